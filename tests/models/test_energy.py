"""SOP and energy accounting on networks small enough to count by hand."""

import pytest
import torch
from torch import nn

from spikesweep.metrics.energy import E_AC_PJ, E_MAC_PJ, EnergyMonitor, fan_out, profile
from spikesweep.models import build_model
from tests.models.helpers import SpikesThenReals
from tests.models.transformer_helpers import integer_spike, lif, meta


class Tiny(nn.Module):
    def __init__(self, spike: nn.Module) -> None:
        super().__init__()
        self.first, self.spike, self.second = nn.Linear(4, 3, bias=False), spike, nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.spike(self.first(x.unsqueeze(0))))  # T=1


@pytest.mark.parametrize("first_out,events", [([1.0, 0.0, 5.0], 1 + 4), ([3.0, 2.0, 0.0], 3 + 2)])
def test_integer_spikes_cost_one_accumulate_per_event(first_out, events):
    model = Tiny(integer_spike())
    model.first.weight.data = torch.tensor([first_out]).T.repeat(1, 4) / 2  # input halves -> first_out
    monitor = EnergyMonitor(model)
    model(torch.full((2, 4), 0.5))  # real-valued, not spike-like
    report = monitor.report()
    assert report.samples == 2
    assert report.mac_flops == 4 * 3  # the first layer reads real values
    assert report.sops == events * 2  # each event reaches both outputs of the second layer
    assert report.energy_mj == pytest.approx((E_MAC_PJ * 12 + E_AC_PJ * events * 2) * 1e-9)
    # NeuroBench's rule: values k/Norm are not in {-1, 0, 1}, so the second layer's are MACs too, one per
    # non-zero input and weight (2 of the 3 neurons fire; the silent one's first-layer weights are all zero)
    # and the bias is no operation
    assert (report.effective_macs, report.effective_acs, report.dense_macs) == (4 * 2 + 2 * 2, 0, 12 + 3 * 2)


def test_binary_spikes_after_a_pool_still_count_as_spikes():
    model = build_model({"name": "spikingformer_2_256"}, lif(v_threshold=0.01), meta(10, (3, 32, 32), 1))
    monitor = EnergyMonitor(model)
    model.train()(torch.rand(2, 3, 32, 32))
    report = monitor.report()
    real_input = {k for k, o in monitor.ops.items() if not o.spike_input}
    assert real_input == {"tokenizer.stem.0", "head"}  # the raw image and the token mean are not spikes
    assert 0 < report.sops < report.dense_flops
    assert 0 < report.firing_rate < 1


def test_profile_reports_every_column():
    model = build_model({"name": "sdtv3_t"}, lif(), meta(10, (3, 32, 32), 1))
    stats = profile(model, (3, 32, 32), 1, False)
    assert stats["params_m"] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6)
    assert stats["activation_mib_per_sample"] > 0 and stats["energy_mj"] > 0


def test_info_subcommand_prints_one_table(capsys):
    pytest.importorskip("spikesweep.data", reason="main's .gitignore pattern 'data/' drops src/spikesweep/data")
    from spikesweep.cli import main

    assert main(["info", "model=spikingformer_2_256", "dataset=digits", "dataset.T=1"]) == 0
    out = capsys.readouterr().out
    for column in ("params_m", "dense_gflops", "sops_g", "energy_mj", "activation_mib_per_sample"):
        assert f"| {column} |" in out
    assert main(["info", "model=sdtv3_t", "dataset=digits"]) == 2  # 8x8 digits cannot be downsampled by 16
    assert "multiple of 16" in capsys.readouterr().err


def test_hardware_metrics_match_the_neurobench_package():
    """Our hooks' footprint, sparsities and operations equal NeuroBench's own metrics on one model and batch."""
    pytest.importorskip("neurobench")
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    from spikesweep.spiking import is_spiking_neuron, reset_states

    torch.manual_seed(0)
    model = build_model({"name": "small_cnn"}, lif(v_threshold=0.1), meta(10, (1, 8, 8), 4)).eval()
    with torch.no_grad():  # pruned convs, so that zero weights must be skipped and connection sparsity is not 0
        for conv in (model.features[0], model.features[3]):
            conv.weight.masked_fill_(torch.rand_like(conv.weight) < 0.3, 0)
    x, y = torch.randint(0, 17, (6, 1, 8, 8)) / 16, torch.randint(0, 10, (6,))  # digits: 0..16, many zeros

    monitor = EnergyMonitor(model)
    with torch.no_grad():
        model(x)
    reset_states(model)
    monitor.remove()
    ours = monitor.report()

    bench = TorchModel(model)
    for neuron in {type(m) for m in model.modules() if is_spiking_neuron(m)}:
        bench.add_activation_module(neuron)  # NeuroBench finds activation layers by type
    bench.register_hooks()
    with torch.no_grad():
        preds = bench(x)
    ops = SynapticOperations()(bench, preds, (x, y))  # per sample, biases left out

    assert ours.footprint_bytes == Footprint()(bench)
    assert ours.connection_sparsity == pytest.approx(ConnectionSparsity()(bench), abs=5e-5)  # theirs: 4 decimals
    assert ours.activation_sparsity == pytest.approx(ActivationSparsity()(bench, preds, (x, y)), rel=1e-12)
    assert ours.dense_macs == ops["Dense"]
    assert ours.effective_macs == pytest.approx(ops["Effective_MACs"], rel=1e-12)  # the stem reads the image
    assert ours.effective_acs == pytest.approx(ops["Effective_ACs"], rel=1e-12)
    assert 0.1 < ours.connection_sparsity < 0.3 and 0.5 < ours.activation_sparsity < 0.95 and ours.effective_acs > 0
    assert ours.dense_macs < ours.dense_flops  # the 3x3 convs' zero padding: counted by dense_flops only


@pytest.mark.parametrize("layer, item_shape", [
    (nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), (4, 9, 8)),
    (nn.Conv2d(4, 6, 4, padding="same"), (4, 7, 7)),
    (nn.Conv2d(4, 6, 3, padding=2, padding_mode="circular"), (4, 6, 6)),
    (nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect"), (4, 6, 6)),
    (nn.Conv1d(3, 5, 5, padding=2, stride=3), (3, 17)),
    (nn.Conv3d(2, 4, 3, padding=(1, 0, 2)), (2, 5, 6, 7)),
])
def test_fan_out_is_the_input_gradient_autograd_gives_also_in_inference_mode(layer, item_shape):
    with torch.no_grad():
        layer.weight[layer.weight.abs() < 0.1] = 0
    ones = torch.ones((1, *item_shape), dtype=torch.float64, requires_grad=True)
    nonzero = (layer.weight.detach() != 0).to(torch.float64)
    layer._conv_forward(ones, nonzero, None).sum().backward()
    dense = float(layer._conv_forward(ones.detach(), torch.ones_like(nonzero), None).sum())
    with torch.inference_mode():
        fan, counted = fan_out(layer, item_shape)
    assert torch.equal(fan, ones.grad[0]) and counted == dense


def test_real_values_in_a_freed_spike_tensors_memory_are_not_counted_as_its_spikes():
    """The CI flake of test_determinism: SOPs of a layer once depended on where the allocator put its input."""
    model = SpikesThenReals()
    monitor = EnergyMonitor(model)
    with torch.inference_mode():
        model(torch.tensor([[0.9, 0.1, 0.9, 0.1, 0.9, 0.1], [0.1] * 6]))
    report = monitor.report()
    assert not monitor.ops["layer"].spike_input and report.sops == 0
    assert report.mac_flops == 6  # 6 real inputs x 1 output, per sample


class _Folded(Tiny):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.spike(self.first(x.unsqueeze(0))).flatten(0, 1).reshape(-1, 3))  # views


def test_integer_spikes_reshaped_before_a_layer_still_count_their_events():
    """A view of a neuron's output is still that neuron's spikes, k events for a spike of k units."""
    model = _Folded(integer_spike())
    model.first.weight.data = torch.tensor([[1.0, 0.0, 5.0]]).T.repeat(1, 4) / 2
    monitor = EnergyMonitor(model)
    with torch.inference_mode():
        model(torch.full((2, 4), 0.5))
    assert monitor.report().sops == (1 + 4) * 2
