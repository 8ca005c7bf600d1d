"""The compile backend's loops are traced once per machine: a later process loads them, untraced, and a
broken file is compiled afresh and replaced. Each case runs in fresh processes, as users' runs do."""

import json
import os
import subprocess
import sys

import pytest

# Trains two layer shapes and evaluates a third under inference_mode, on the compile backend and on the
# eager reference; prints whether they agree and how many graphs Dynamo traced in this process.
SCRIPT = """
import json, os, torch
from spikesweep.spiking import build_neuron, build_surrogate
from spikesweep.spiking.neurons import loop_cache
if os.environ.get("HOLD"):  # as a training run's first steps do: unsaved loops run eager until a decision
    loop_cache.hold_compiles()
sg = build_surrogate({"name": "atan"})
compiled, reference = (build_neuron({"name": "lif", "backend": b}, sg)() for b in ("compile", "torch"))
same = True
for shape in [(4, 8, 16), (4, 3, 5)]:
    x = torch.randn(shape).mul(1.5).requires_grad_(True)
    y = x.detach().clone().requires_grad_(True)
    a, b = compiled(x), reference(y)
    a.sum().backward(); b.sum().backward()
    compiled.reset(); reference.reset()
    same &= torch.equal(a, b) and torch.allclose(x.grad, y.grad, atol=1e-6)
with torch.inference_mode():
    x = torch.randn(4, 6, 7)
    same &= torch.equal(compiled(x), reference(x))
decision = loop_cache.decide_compiles(1, 10) if os.environ.get("HOLD") else None
print(json.dumps({"same": bool(same), "traced": torch._dynamo.utils.counters["stats"]["unique_graphs"],
                  **({"held_loops": decision.loops, "compile": decision.compile} if decision else {})}))
"""


def _run(cache, hold: bool = False) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), **({"HOLD": "1"} if hold else {})}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_second_process_loads_the_loops_without_tracing_and_a_broken_file_is_replaced(tmp_path):
    # a short run on a cold cache: every loop eager (nothing traced, nothing saved), and compiling does not pay
    assert _run(tmp_path, hold=True) == {"same": True, "traced": 0, "held_loops": 5, "compile": False}
    assert not (tmp_path / "spikesweep_loops").exists()
    first = _run(tmp_path)
    files = sorted((tmp_path / "spikesweep_loops").glob("*.bin"))
    assert first == {"same": True, "traced": 5} and len(files) == 5  # per shape: forward, backward; inference
    assert _run(tmp_path) == {"same": True, "traced": 0}
    assert _run(tmp_path, hold=True) == {"same": True, "traced": 0}  # saved loops load at once: nothing held
    files[0].write_bytes(b"not a compiled function")
    assert _run(tmp_path) == {"same": True, "traced": 1}
    assert _run(tmp_path) == {"same": True, "traced": 0}  # the broken file was replaced


def _doubled(x):
    return x * 2


@pytest.mark.slow
def test_a_saved_loop_whose_guards_refuse_the_call_falls_back_to_compiling(tmp_path, monkeypatch):
    """Strides are not in the file name; the saved loop's guards check them."""
    import torch

    from spikesweep.spiking.neurons import loop_cache

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(loop_cache, "_LOADED", {})
    x = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(loop_cache.run_compiled(_doubled, x), 2 * x)
    transposed = torch.arange(6.0).reshape(3, 2).t()  # the same shape, not contiguous
    assert torch.equal(loop_cache.run_compiled(_doubled, transposed), 2 * transposed)
    assert list(loop_cache._LOADED.values()) == [None]  # refused by its guards, compiled instead


@pytest.mark.slow
def test_each_compile_says_so_in_one_line_with_how_long_the_last_ones_took(tmp_path, monkeypatch, caplog):
    import torch

    from spikesweep.spiking.neurons import loop_cache

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(loop_cache, "_LOADED", {})
    caplog.set_level("INFO", logger=loop_cache.__name__)
    loop_cache.run_compiled(_doubled, torch.ones(2, 3))
    loop_cache.run_compiled(_doubled, torch.ones(4, 5))
    lines = [r.getMessage() for r in caplog.records]
    folder = tmp_path / "spikesweep_loops"
    assert lines[0] == (f"compiling the neuron loop _doubled for [(2, 3)] (the first on this machine: seconds to a "
                        f"minute on a CPU; saved for later runs in {folder})")
    taken = json.loads((folder / "compile_seconds.json").read_text())
    assert len(taken) == 2 and all(t > 0 for t in taken)
    assert lines[1].startswith(f"compiling the neuron loop _doubled for [(4, 5)] (about {taken[0]:.0f} s, as the "
                               "last 1 here took;")
