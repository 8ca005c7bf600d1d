"""Integer spikes expanded into binary sub-steps give the same logits."""

import pytest
import torch

from spikesweep.metrics.spike_expansion import BinaryExpansion, verify_expansion
from spikesweep.models import build_model
from tests.conftest import SMOKE, compose
from tests.models.helpers import SpikesThenReals
from tests.models.transformer_helpers import integer_spike, meta


def _sdtv3():
    torch.manual_seed(0)
    model = build_model({"name": "sdtv3_t", "head_neuron": {"norm_value": 1.0}}, integer_spike, meta(10, (3, 32, 32), 1))
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)):
        bn.momentum, bn.weight.data = 1.0, torch.full_like(bn.weight, 2.0)  # eval BN = this batch's, wide
    with torch.no_grad():
        model.train()(torch.randn(4, 3, 32, 32))  # so that eval-mode neurons emit every integer 0..4
    return model


def test_sdtv3_integer_and_binary_logits_match():
    check = verify_expansion(_sdtv3(), [torch.randn(2, 3, 32, 32)])
    assert check.match, check
    assert check.max_substeps == 4  # integers up to D=4 really occur
    assert check.expanded_layers > 50  # every conv/linear after a spike, the head included


def test_expansion_feeds_the_weights_binary_tensors_only():
    model = _sdtv3().eval()
    seen = []
    expansion = BinaryExpansion(model)
    original = torch.nn.functional.linear

    def spy(x, w, b=None):
        seen.append(torch.unique(x).tolist())
        return original(x, w, b)

    torch.nn.functional.linear = spy
    try:
        model(torch.randn(1, 3, 32, 32))
    finally:
        torch.nn.functional.linear = original
        expansion.remove()
    assert seen and all(set(v) <= {0.0, 1.0} for v in seen)  # head: Norm=1, unit 1


def test_cli_checks_a_trained_run(tmp_path, capsys):
    pytest.importorskip("spikesweep.data", reason="main's .gitignore pattern 'data/' drops src/spikesweep/data")
    from spikesweep.cli import main
    from spikesweep.run import train

    overrides = ("model=spikingformer_2_256", "dataset.T=1", "trainer.batch_size=4", "trainer.max_steps_per_epoch=1",
                 "dataset.test_fraction=0.05")
    train(compose(*SMOKE, *overrides), tmp_path, list(overrides))
    assert main(["verify-spikes", str(tmp_path / "checkpoints" / "last.pt"), "--batches", "1"]) == 0
    assert "MATCH" in capsys.readouterr().out
    assert main(["verify-spikes", str(tmp_path / "missing.pt")]) == 2


def test_real_values_in_a_freed_spike_tensors_memory_are_not_taken_for_spikes():
    """Before, the layer below was expanded (and refused: "non-integer spikes") when its input landed in memory
    a neuron's output had just freed."""
    check = verify_expansion(SpikesThenReals(), [torch.tensor([[0.9, 0.1, 0.9, 0.1, 0.9, 0.1], [0.1] * 6])])
    assert check.match and check.expanded_layers == 0, check
