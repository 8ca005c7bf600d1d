"""SOP and energy accounting on networks small enough to count by hand."""

import pytest
import torch
from torch import nn

from spikesweep.metrics.energy import E_AC_PJ, E_MAC_PJ, EnergyMonitor, profile
from spikesweep.models import build_model
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
