"""Faults a shared, preemptible cluster produces: full disks, double-booked directories, hostile files."""

import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from spikesweep.run import RunError, train
from tests.conftest import SMOKE, compose, run_cli


def test_disk_full_during_checkpoint_keeps_the_previous_one(tmp_path):
    base = [sys.executable, "-m", "spikesweep.cli", "train", *SMOKE, f"hydra.run.dir={tmp_path}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(base, env=env, check=True, capture_output=True, timeout=300)
    last = tmp_path / "checkpoints" / "last.pt"
    before = last.read_bytes()

    def limit_file_size():  # writes past 64 KiB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    out = subprocess.run(
        [*base, "trainer.epochs=2", "resume.extend=true"], env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size
    )
    assert out.returncode != 0
    assert "could not write checkpoint" in out.stderr and "the previous checkpoint is intact" in out.stderr
    assert last.read_bytes() == before
    assert not list(last.parent.glob(".*.tmp")), "no temporary file may be left behind"


def test_second_job_in_a_busy_directory_is_refused(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    with FileLock(tmp_path / ".lock"):
        with pytest.raises(RunError, match="another process is already running"):
            train(compose(*SMOKE), tmp_path, [])
    assert not (tmp_path / "metrics.jsonl").exists()


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": _Exploit()}))
    with pytest.raises(RunError, match="cannot load checkpoint"):
        train(compose(*SMOKE, "trainer.eval_only=true", f"ckpt={evil}"), tmp_path / "run", [])
    assert not (tmp_path / "pwned").exists()


def test_hydra_callback_that_would_run_code_is_refused(tmp_path):
    """Hydra builds callbacks before any job: the `_target_` allow-list must reach `hydra.*` too."""
    copied = tmp_path / "copied"
    out = run_cli("train", *SMOKE, f"hydra.run.dir={tmp_path / 'run'}", "+hydra.callbacks.x._target_=shutil.copy",
                  "+hydra.callbacks.x.src=/etc/hostname", f"+hydra.callbacks.x.dst={copied}", cwd=tmp_path)
    assert out.returncode == 2 and not copied.exists()
    assert out.stderr.strip() == (
        "error: hydra.callbacks.x._target_=shutil.copy is not allowed; _target_ must start with one of "
        "spikesweep., hydra_plugins., hydra._internal.core_plugins."
    )


@pytest.mark.parametrize("override", [
    "hydra.callbacks.sweep_summary._target_=builtins.exec",
    "hydra.launcher._target_=${oc.env:NO_SUCH_VARIABLE,os.system}",  # an interpolation hides nothing
    "hydra.job_logging.handlers.console.class=shutil.copy",  # logging's dictConfig calls `class` too
    "+hydra.callbacks.x._target_=shutil.copy,os.system",
])
def test_every_factory_under_hydra_is_checked(override):
    from spikesweep.override_check import check

    assert check([override]) is not None


def test_the_projects_own_launchers_sweeper_and_callbacks_pass():
    from spikesweep.override_check import check

    assert check(["+experiments=demo"]) is None
    assert check(["-m", "hydra/launcher=slurm", "+cluster=example"]) is None
    assert check(["hydra/launcher=local", "hydra.job_logging.handlers.console.class=logging.StreamHandler"]) is None


def test_api_key_never_reaches_run_files(tmp_path, monkeypatch):
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_MODE", "offline")
    train(compose(*SMOKE[:2], "logger=wandb"), tmp_path, [])
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_failing_remote_logger_is_reported_once_and_training_goes_on(tmp_path, caplog):
    from spikesweep.tracking import JsonlTracker, TrackerGroup

    class Broken:
        calls = 0

        def log(self, metrics, step):
            Broken.calls += 1
            raise ConnectionError("wandb unreachable")

        def finish(self, status):
            raise ConnectionError("wandb unreachable")

    group = TrackerGroup(JsonlTracker(tmp_path / "m.jsonl"), Broken())
    for epoch in range(3):
        group.log({"test_top1": float(epoch)}, epoch)
    group.finish("completed")
    assert Broken.calls == 1
    assert [json.loads(line)["epoch"] for line in (tmp_path / "m.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert sum("failed and is disabled" in r.message for r in caplog.records) == 1


def test_loaded_checkpoint_holds_only_plain_data(tmp_path):
    train(compose(*SMOKE), tmp_path, [])
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert isinstance(state["config"], dict) and isinstance(state["rng"]["torch"], torch.Tensor)


@pytest.mark.slow
def test_unreachable_wandb_server_is_reported_once_and_training_goes_on(tmp_path):
    """A real wandb client pointed at a closed loopback port: the run completes on metrics.jsonl alone."""
    env = {
        **os.environ, "WANDB_MODE": "online", "WANDB_API_KEY": "0" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9",
        "WANDB_INIT_TIMEOUT": "5", "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "spikesweep.cli", "train", *SMOKE[:2], "logger.mode=online", f"hydra.run.dir={tmp_path}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    log = (tmp_path / "train.log").read_text()
    assert log.count("wandb could not start") == 1
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_killed_data_loader_worker_stops_the_run_in_one_line_and_a_restart_resumes(tmp_path):
    cmd = [sys.executable, "-m", "spikesweep.cli", "train", "logger=none", "trainer.num_workers=1",
           "trainer.epochs=6", f"hydra.run.dir={tmp_path}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its workers were killed"
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert workers, "trainer.num_workers=1 must run the loader in a child process"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=240)

    assert proc.returncode != 0
    assert "a data loader worker died" in stderr and "restart in" in stderr, stderr
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "data loader worker" in summary["error"]
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["epoch"] < 5, "killed mid-run"

    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs == list(range(6)), "the restart must continue after the last checkpoint, without duplicates"


class _DiesLikeALoaderWorker:
    """Pickling it raises what torch's SIGCHLD handler raises when a worker dies mid-write."""

    def __reduce__(self):
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")


def test_worker_death_while_a_checkpoint_is_written_is_reported_as_the_worker_death(tmp_path):
    from spikesweep.engine import checkpoint as ckpt
    from spikesweep.engine.failures import DataWorkerError, worker_deaths_reported

    path = tmp_path / "last.pt"
    ckpt.save_atomic({"epoch": 0}, path)
    with pytest.raises(DataWorkerError, match="a data loader worker died during the end of an epoch"):
        with worker_deaths_reported("the end of an epoch"):
            ckpt.save_atomic({"epoch": 1, "x": _DiesLikeALoaderWorker()}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 0}
    assert not list(tmp_path.glob(".*.tmp"))


class _DiesInAFinalizer:
    """torch's SIGCHLD handler firing inside a finalizer: Python cannot raise it there, only print it."""

    def __del__(self):
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")


def test_a_worker_death_python_cannot_raise_prints_no_traceback(capsys, monkeypatch):
    from spikesweep.engine.failures import worker_deaths_reported

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)  # Python's own, which prints (not pytest's)
    with worker_deaths_reported("training"):
        _DiesInAFinalizer()  # made and dropped: its __del__ raises where nothing can catch it
    assert "Traceback" not in capsys.readouterr().err
    assert sys.unraisablehook is sys.__unraisablehook__
    _DiesInAFinalizer()  # outside a training phase Python prints it as ever
    assert "Exception ignored" in capsys.readouterr().err


def _break_a_handshake_with_the_handle_server() -> None:
    """What a loader worker killed while it fetches a batch's file descriptor leaves: a connection to this
    process's handle server (multiprocessing.resource_sharer, a thread) that fails before the handshake ends."""
    from multiprocessing import resource_sharer
    from multiprocessing.connection import Client

    read_end, _ = os.pipe()
    resource_sharer.DupFd(read_end)  # registers a handle: the server thread starts, as for a shared tensor
    try:
        Client(resource_sharer._resource_sharer._address, authkey=b"not this process's key")
    except Exception:  # noqa: BLE001 - the client's side of the broken handshake
        pass
    time.sleep(0.5)  # the server thread reports its side


def test_a_worker_death_mid_handshake_prints_no_traceback_from_the_handle_server(capsys, monkeypatch):
    from spikesweep.engine.failures import worker_deaths_reported

    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)  # Python's own, which prints
    with worker_deaths_reported("training"):
        _break_a_handshake_with_the_handle_server()
    assert "Traceback" not in capsys.readouterr().err
    assert sys.excepthook is sys.__excepthook__
    _break_a_handshake_with_the_handle_server()  # outside a training phase Python prints it as ever
    assert "resource_sharer.py" in capsys.readouterr().err


class _CtrlCWhilePickled:
    """Pickling it presses Ctrl-C in the middle of torch.save (CI once had one land there, at an epoch's end)."""

    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGINT)
        return (int, (5,))


def test_ctrl_c_while_a_checkpoint_is_written_comes_after_the_whole_checkpoint(tmp_path):
    from spikesweep.engine import checkpoint as ckpt
    from spikesweep.engine.preemption import Interruption

    path = tmp_path / "last.pt"
    with Interruption() as interruption, pytest.raises(KeyboardInterrupt):
        ckpt.save_atomic({"epoch": 1, "x": _CtrlCWhilePickled()}, path)
    assert torch.load(path, weights_only=False) == {"epoch": 1, "x": 5}  # written whole, then interrupted
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(KeyboardInterrupt):
        interruption.pending()  # and remembered, as any Ctrl-C


def test_ctrl_c_says_how_to_resume_and_records_interrupted(tmp_path):
    cmd = [sys.executable, "-m", "spikesweep.cli", "train", "logger=none", "trainer.epochs=50", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):  # training has started
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before Ctrl-C"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == f"interrupted; restart in {tmp_path} to resume"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "error" not in summary


_EXPLODING_MODEL = """
import sys, torch
from spikesweep import cli
from spikesweep.models import register_model

class Exploding(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (a bug in model code)")

register_model("exploding")(lambda neuron, meta, **params: Exploding())
sys.exit(cli.main(sys.argv[1:]))
"""


def test_unexpected_error_is_one_line_with_its_traceback_in_train_log(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", _EXPLODING_MODEL, "train", *SMOKE, "model.name=exploding", f"hydra.run.dir={tmp_path}"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == (
        "error: RuntimeError: mat1 and mat2 shapes cannot be multiplied (a bug in model code) "
        f"(traceback in {tmp_path / 'train.log'})"
    )
    log = (tmp_path / "train.log").read_text()
    assert "Traceback (most recent call last)" in log and "in forward" in log
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"] == "RuntimeError: mat1 and mat2 shapes cannot be multiplied (a bug in model code)"
