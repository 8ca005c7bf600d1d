"""The once-per-machine parity check of fused backends (spiking/backends/verify.py) and `spikesweep doctor`.

The compile backend runs its hand-written loops eagerly here (`run_compiled` patched): what is tested is
the mechanism (check, record, reuse, refusal), not Inductor, which would cost a minute per process on 2 cores.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from spikesweep.spiking import build_neuron, build_surrogate
from spikesweep.spiking.backends import user_cache, verify
from spikesweep.spiking.neurons import compiled
from spikesweep.spiking.neurons.lif import auto_backend


@pytest.fixture
def checks_on(monkeypatch, tmp_path):
    """Checks enabled, a fresh per-user cache, compile's loops eager, and a count of the checks run."""
    monkeypatch.setenv(verify.ENV, "1")
    monkeypatch.setenv(user_cache.ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # the doctor would set it
    monkeypatch.delenv("SPIKESWEEP_AUTO_BACKEND", raising=False)
    monkeypatch.setattr(compiled, "run_compiled", lambda fn, *args: fn(*args))
    verify.forget()
    runs = []
    real = verify.run_check
    monkeypatch.setattr(verify, "run_check", lambda *a: runs.append(a[0]) or real(*a))
    yield runs
    verify.forget()


@pytest.fixture
def broken_compile(monkeypatch):
    """The compile backend with a wrong surrogate derivative (twice the right one) in its backward."""
    right = compiled.derivative_of
    monkeypatch.setattr(compiled, "derivative_of", lambda sg: (lambda x, **p: 2 * right(sg)(x, **p)))


def test_a_passing_backend_is_checked_once_and_remembered_across_processes(checks_on):
    atan = build_surrogate({"name": "atan"})
    assert auto_backend(atan, "cpu") == "compile"
    assert checks_on == ["compile"]
    records = list(user_cache.user_cache_dir().glob("backends/compile-*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["passed"] and record["spikes_differ"] == 0 and record["grad_diff"] <= verify.TOLERANCE
    assert record["key"]["versions"]["torch"] == torch.__version__ and record["key"]["source"]
    build_neuron({"name": "lif", "backend": "compile"}, atan)()  # by name: the same verdict, no check
    verify.forget()  # as a new process: read from the cache file
    assert auto_backend(atan, "cpu") == "compile"
    assert checks_on == ["compile"]
    auto_backend(build_surrogate({"name": "sigmoid"}), "cpu")  # another surrogate is another check
    assert checks_on == ["compile", "compile"]


def test_auto_skips_a_backend_that_fails_and_a_request_by_name_fails_in_one_line(checks_on, broken_compile):
    atan = build_surrogate({"name": "atan"})
    assert auto_backend(atan, "cpu") == "torch"
    assert "backend=compile" not in repr(build_neuron({"name": "lif", "backend": "auto"}, atan, device="cpu")())
    with pytest.raises(verify.BackendFailed, match=r"^backend 'compile' failed its parity check against torch on "
                       r"cpu .* for ATan\(alpha=2\): 0 spikes differ, max difference \d") as err:
        build_neuron({"name": "lif", "backend": "compile"}, atan)()
    assert "\n" not in str(err.value)
    verify.forget()
    assert auto_backend(atan, "cpu") == "torch"  # the failure is remembered too
    assert checks_on == ["compile"]


def test_a_changed_backend_source_is_checked_again(checks_on, monkeypatch):
    atan = build_surrogate({"name": "atan"})
    auto_backend(atan, "cpu")
    verify.forget()
    monkeypatch.setattr(verify, "_source_digest", lambda backend: "edited")
    auto_backend(atan, "cpu")
    assert checks_on == ["compile", "compile"]


def test_checks_off_trust_the_backend(checks_on, monkeypatch, broken_compile):
    monkeypatch.setenv(verify.ENV, "0")
    assert auto_backend(build_surrogate({"name": "atan"}), "cpu") == "compile"
    assert checks_on == []


_WRITER = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("user_cache", sys.argv[3])  # the module alone: no torch import
cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache)
read_json, write_json = cache.read_json, cache.write_json
path, me = Path(sys.argv[1]), int(sys.argv[2])
for i in range(200):
    assert write_json(path, {"writer": me, "i": i, "pad": "x" * 20000})
    assert read_json(path) is not None, "a reader saw a partial file"
"""


def test_concurrent_writers_never_leave_a_partial_record(tmp_path):
    path = tmp_path / "cache" / "backends" / "same.json"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(k), user_cache.__file__], stderr=subprocess.PIPE, text=True)
             for k in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    final = user_cache.read_json(path)
    assert final["i"] == 199 and final["writer"] in range(4)
    assert [p.name for p in path.parent.iterdir()] == ["same.json"]  # no temporary file left behind


def test_user_cache_dir_follows_xdg_and_the_override(monkeypatch, tmp_path):
    monkeypatch.delenv(user_cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache.user_cache_dir() == tmp_path / "xdg" / "spikesweep"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache.user_cache_dir() == tmp_path / "home" / ".cache" / "spikesweep"
    monkeypatch.setenv(user_cache.ENV, str(tmp_path / "mine"))
    assert user_cache.user_cache_dir() == tmp_path / "mine"


def test_an_unwritable_cache_still_gives_a_verdict(checks_on, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(user_cache.ENV, str(blocker / "cache"))  # under a file: mkdir fails
    v = verify.verdict("compile", build_surrogate({"name": "atan"}), "cpu")
    assert v.passed and v.record == ""


def test_doctor_runs_as_a_command(tmp_path):
    """The real CLI in a fresh process; compile is left out (Inductor: a minute on 2 cores; the doctor of
    scripts/gpu_check.sh runs it), the rest is checked and timed on a small shape."""
    env = {**os.environ, user_cache.ENV: str(tmp_path), verify.ENV: "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "spikesweep.cli", "doctor", "--backends", "torch,spikingjelly,cupy",
                           "--shape", "4,2,64", "--repeats", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("spikesweep doctor: torch ") and f"verdicts in {tmp_path}" in lines[0]
    rows = {line.split()[3]: line for line in lines if line.startswith("cpu ")}
    assert "reference" in rows["torch"] and " ms (1.00x torch)" in rows["torch"]
    assert "verified" in rows["spikingjelly"] and "0 spikes differ" in rows["spikingjelly"]
    cupy_status = "" if torch.cuda.is_available() else "unavailable"
    assert cupy_status in rows["cupy"]
    assert len(list((tmp_path / "backends").glob("spikingjelly-*.json"))) == 1


def test_doctor_shows_a_failed_backend_and_exits_1(checks_on, broken_compile, capsys):
    from spikesweep.cli import main

    assert main(["doctor", "--backends", "torch,compile", "--shape", "4,2,64", "--repeats", "1"]) == 1
    row = next(line for line in capsys.readouterr().out.splitlines() if " compile " in line)
    assert " failed " in row and "max difference" in row
    assert main(["doctor", "--backends", "torch,gpu"]) == 2



def test_paths_cache_dir_defaults_to_the_per_user_cache(monkeypatch, tmp_path):
    """Compiled loops and data caches are shared by every clone: `paths.cache_dir` is the per-user cache."""
    from tests.conftest import compose

    monkeypatch.delenv("SPIKESWEEP_CACHE", raising=False)
    monkeypatch.setenv(user_cache.ENV, str(tmp_path / "mine"))
    assert compose().paths.cache_dir == str(tmp_path / "mine")
    monkeypatch.setenv("SPIKESWEEP_CACHE", str(tmp_path / "this clone"))
    assert compose().paths.cache_dir == str(tmp_path / "this clone")
