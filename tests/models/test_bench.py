"""The model benchmark runs both variants and reports positive numbers."""

import torch

from spikesweep.bench.model import bench_model, eager_lif_factory
from tests.models.transformer_helpers import lif, meta


def test_bench_compares_with_the_eager_reference():
    results = bench_model({"name": "spikingformer_2_256"}, lif(), meta(10, (3, 16, 16), 1), batch=2, steps=1,
                          warmup=0, compile_model=False, device=torch.device("cpu"), amp=None)
    assert set(results) == {"eager_lif", "ours"}
    assert all(r.samples_per_s > 0 and r.peak_mib > 0 for r in results.values())


def test_eager_reference_takes_the_attention_threshold_override():
    assert eager_lif_factory(v_threshold=0.5).v_threshold == 0.5
