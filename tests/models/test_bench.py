"""The model benchmark runs both variants, reports positive numbers and splits step time by module kind."""

import csv

import pytest
import torch
from torch import nn

from spikesweep.bench.model import CATEGORIES, bench_model, eager_lif_factory, time_shares, time_split
from spikesweep.models import build_model
from tests.conftest import run_cli
from tests.models.transformer_helpers import lif, meta


def test_bench_compares_with_the_eager_reference():
    results = bench_model({"name": "spikingformer_2_256"}, lif(), meta(10, (3, 16, 16), 1), batch=2, steps=1,
                          warmup=0, compile_model=False, device=torch.device("cpu"), amp=None)
    assert set(results) == {"eager_lif", "ours"}
    assert all(r.samples_per_s > 0 and r.peak_mib > 0 for r in results.values())


def test_eager_reference_takes_the_attention_threshold_override():
    assert eager_lif_factory(v_threshold=0.5).v_threshold == 0.5


def test_time_split_covers_the_whole_step_and_finds_the_neurons():
    model = build_model({"name": "small_cnn"}, lif(), meta(10, (1, 8, 8), 4))
    shares = time_shares(model, torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)), steps=2, amp=None)
    assert set(shares) == set(CATEGORIES)
    assert sum(shares.values()) == pytest.approx(100.0)
    # every category found; their sizes are timings, which a busy machine moves (2 % for the neurons seen)
    assert shares["neuron"] > 0 and shares["conv_linear"] > 0 and shares["other"] > 0
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # labels removed


def test_neuron_backward_counts_as_neuron_time():
    """Only the forward runs inside the neuron label; backward counts as neuron time only because each
    backward op is traced to the forward op that recorded it (without that, backward would be `other`)."""
    neurons = nn.Sequential(*(lif()() for _ in range(6)))
    x = torch.rand(4, 2, 64, requires_grad=True) * 3
    with torch.profiler.profile() as prof:
        with torch.autograd.profiler.record_function("spikesweep::neuron"):
            y = neurons(x)
        y.sum().backward()
    assert time_split(list(prof.events()), on_device=False)["neuron"] > 90


def test_bench_model_cli_writes_the_split_to_csv(tmp_path):
    out = run_cli("bench", "model", "model=small_cnn", "dataset=digits", "trainer.batch_size=8", "--steps", "1",
                  "--csv", str(tmp_path / "m.csv"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    with (tmp_path / "m.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["neuron"] for r in rows] == ["eager_lif", "lif"]
    for r in rows:
        assert sum(float(r[f"{k}_pct"]) for k in CATEGORIES) == pytest.approx(100, abs=0.5)
        assert float(r["neuron_pct"]) > 0 and float(r["mib_per_sample"]) > 0
    assert "neuron_pct" in out.stdout


def test_bench_model_cli_names_a_model_without_blocks(tmp_path):
    out = run_cli("bench", "model", "model=small_cnn", "dataset=digits", "trainer.checkpoint_activations=blocks",
                  "--csv", str(tmp_path / "m.csv"), cwd=tmp_path)
    assert out.returncode == 2 and "model SmallCNN does not list its blocks" in out.stderr
