"""Every job of a sweep is counted, a failed one leaves its summary.json, and a failure is the exit status."""

import json

from tests.conftest import SMOKE, run_cli


def _summary(path) -> dict:
    return json.loads(path.read_text())


def test_a_job_refused_by_validation_is_recorded_counted_and_fails_the_sweep(tmp_path):
    out = run_cli("train", "-m", "seed=", *SMOKE, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "0 succeeded, 1 failed" in out.stdout
    summary = _summary(tmp_path / "sweep" / "0" / "summary.json")
    assert summary["status"] == "failed" and summary["error"] == "seed='' must be an integer >= 0"


def test_mixed_sweep_counts_and_times_each_job_from_its_own_start(tmp_path):
    sweep = tmp_path / "sweep"
    out = run_cli("train", "-m", "seed=1,-1,2", *SMOKE, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "2 succeeded, 1 failed" in out.stdout and f"failed: {sweep / '1'}" in out.stdout
    assert _summary(sweep / "1" / "summary.json")["error"] == "seed=-1 must be an integer >= 0"
    first, last = _summary(sweep / "0" / "summary.json"), _summary(sweep / "2" / "summary.json")
    assert 0 < last["first_step_s"] < last["wall_time_s"]  # not counting the jobs before it
    assert last["first_step_from_process_s"] > first["wall_time_s"]

    # the same sweep again with a changed config: the finished jobs are refused and left as they were
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".pt")}
    again = run_cli("train", "-m", "seed=1,-1,2", *SMOKE, "neuron.tau=3.0", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert again.returncode == 1 and "0 succeeded, 3 failed" in again.stdout, again.stdout[-2000:]
    assert "the config changed what it trained (neuron.tau 2.0 -> 3.0)" in again.stdout
    assert {p: p.read_bytes() for p in before} == before
