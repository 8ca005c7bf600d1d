"""Compiling only where it pays for itself in the run at hand (engine/compile_policy.py, loop_cache): the
arithmetic, the whole-model decision under `trainer.compile: auto` with this machine's record of compile
times, and a training run whose neuron loops stay eager because it is too short to repay compiling them."""

import json

import torch
from torch import nn

from spikesweep.engine import compile_policy
from spikesweep.engine.compile_policy import CompilePolicy, model_compile_pays
from spikesweep.spiking.neurons import loop_cache
from tests.conftest import SMOKE, run_cli


def test_the_arithmetic_of_paying_for_a_compile():
    # 10 ms of eager loops per step, 2x faster compiled: 5 ms saved per step; 4 loops at 10 s cost 40 s
    assert not loop_cache.compiling_pays(0.010, 4, 7_999, 10.0, speedup=2.0).compile
    decision = loop_cache.compiling_pays(0.010, 4, 8_001, 10.0, speedup=2.0)
    assert decision.compile and round(decision.saved_s, 3) == 40.005 and decision.cost_s == 40.0
    assert "pays here: 4 loop(s), about 40 s to compile" in decision.line(8_001)
    assert not loop_cache.compiling_pays(1.0, 0, 10**9, 10.0).compile  # nothing to compile
    assert model_compile_pays(0.1, 1_201, 40.0, speedup=1.5) and not model_compile_pays(0.1, 1_199, 40.0, speedup=1.5)


def _policy_after_two_steps(total_steps: int) -> nn.Module:
    net = nn.Linear(4, 2)
    policy = CompilePolicy("auto", total_steps, agree=lambda pays: pays)
    try:
        for _ in range(compile_policy.TIMED_STEPS):
            policy.before_step()
            net(torch.randn(8, 4)).sum().backward()
            net = policy.after_step(net)
    finally:
        policy.close()
    return net


def test_trainer_compile_auto_compiles_only_a_run_long_enough(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    (tmp_path / "model_compile_seconds.json").write_text(json.dumps([0.5, 0.5]))  # this machine's record
    assert isinstance(_policy_after_two_steps(10**9), torch._dynamo.eval_frame.OptimizedModule)
    assert type(_policy_after_two_steps(3)) is nn.Linear
    (tmp_path / "model_compile_seconds.json").write_text(json.dumps([1e9]))
    assert type(_policy_after_two_steps(10**9)) is nn.Linear


def test_a_short_run_keeps_its_neuron_loops_eager_and_says_why(tmp_path):
    res = run_cli("train", *SMOKE, "neuron.backend=compile", "trainer.compile=auto", f"paths.cache_dir={tmp_path}",
                  f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "the neuron loops stay eager: 4 loop(s)" in log and "over the 1 steps to come" in log
    assert "trainer.compile=auto: the model stays eager" in log
    assert not list((tmp_path / "inductor").glob("spikesweep_loops/*.bin")), "nothing compiled, nothing saved"
