"""Block adaptive LIF: the block algorithm against the step-by-step definition, LIF as its special case,
adaptation and refractoriness by hand, state across calls, both step modes, misuse."""

import pytest
import torch

from spikesweep.spiking import build_neuron, build_surrogate, reset_states
from tests.conftest import compose

ATAN = build_surrogate({"name": "atan"})


def block_alif(**params):
    return build_neuron({"name": "block_alif", **params}, ATAN)()


def step_by_step(x, d, p, beta, latency, threshold=1.0):
    """The definition in docs/neurons.md, one step at a time; d and p broadcast over dim 2 of x."""
    d, p = d.view(-1, *[1] * (x.dim() - 3)), p.view(-1, *[1] * (x.dim() - 3))
    v, a, left = torch.zeros_like(x[0]), torch.zeros_like(x[0]), torch.zeros_like(x[0])
    out = []
    for xt in x:
        refractory = left > 0
        v = d * v + xt.masked_fill(refractory, 0.0)
        s = ATAN(v - threshold - beta * a) * ~refractory
        fired = s.detach()
        v, a = v * (1 - fired), p * a + fired
        left = torch.where(fired > 0, torch.full_like(left, latency), (left - 1).clamp(min=0))
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("latency", [1, 2, 3, 7])
def test_blocks_equal_the_step_by_step_definition_spikes_and_gradients(latency):
    torch.manual_seed(latency)
    x = (torch.randn(13, 3, 4, 2, dtype=torch.float64) + 0.7).requires_grad_(True)
    neuron = block_alif(tau=2.0, tau_adapt=3.0, beta=0.5, latency=latency, channels=4).double()
    with torch.no_grad():  # per-channel decays that differ, so a channel mix-up would show
        neuron.decay.copy_(torch.tensor([0.3, 0.5, 0.7, 0.9]))
        neuron.adapt_decay.copy_(torch.tensor([0.9, 0.6, 0.4, 0.2]))
    got = neuron(x)
    want = step_by_step(x, neuron.decay, neuron.adapt_decay, 0.5, latency)
    assert torch.equal(got, want) and got.sum() > 10
    weights = torch.rand_like(got)  # distinct weight per output, so every path of the gradient counts
    params = [x, neuron.decay, neuron.adapt_decay]
    grads = torch.autograd.grad((got * weights).sum(), params)
    expected = torch.autograd.grad((want * weights).sum(), params)
    for g, e in zip(grads, expected):
        assert torch.allclose(g, e) and g.abs().sum() > 0


def test_without_adaptation_or_refractory_period_it_is_lif():
    torch.manual_seed(0)
    x = (torch.randn(9, 2, 3, 5, 5, dtype=torch.float64) + 0.8).requires_grad_(True)
    cfg = compose("neuron=lif")
    lif = build_neuron(cfg.neuron, ATAN)()
    ours = block_alif(tau=2.0, beta=0.0, latency=0, decay_input=True, learnable=False).double()
    got, want = ours(x), lif(x)
    assert torch.equal(got, want) and 0 < got.mean() < 1
    assert torch.allclose(*(torch.autograd.grad(y.sum(), x)[0] for y in (got, want)))


@pytest.mark.parametrize(
    ("params", "spikes"),
    [
        # d = p = 0.5, th 1, x = 1.5: spike (a = 1); v 1.5 < th 2; v 2.25 >= th 1.5, spike (a = 1.25); 1.5 < 2.25
        ({"beta": 1.0, "latency": 0}, [1.0, 0.0, 1.0, 0.0]),
        ({"beta": 0.0, "latency": 0}, [1.0, 1.0, 1.0, 1.0]),
        ({"beta": 0.0, "latency": 2}, [1.0, 0.0, 0.0, 1.0]),  # two silent steps after each spike
    ],
)
def test_adaptation_and_refractory_period_by_hand(params, spikes):
    neuron = block_alif(tau=2.0, tau_adapt=2.0, learnable=False, **params)
    assert neuron(torch.full((4, 1), 1.5)).flatten().tolist() == spikes


def test_adaptation_raises_the_threshold_after_spikes():
    torch.manual_seed(1)
    x = torch.rand(32, 8, 16) + 0.5
    counts = [block_alif(beta=beta, channels=16)(x).sum().item() for beta in (0.0, 0.5, 2.0)]
    assert counts[0] > counts[1] > counts[2] > 0


def test_state_carries_over_between_calls_and_resets():
    torch.manual_seed(2)
    x = torch.randn(13, 2, 6) + 0.7
    neuron = block_alif(latency=3, tau=5.0, tau_adapt=4.0)
    whole = neuron(x)
    reset_states(neuron)
    pieces = torch.cat([neuron(x[:5]), neuron(x[5:])])  # split inside a block
    assert torch.equal(pieces, whole)
    reset_states(neuron)
    assert torch.equal(neuron(x), whole)


def test_single_step_mode_matches_multi_step():
    torch.manual_seed(3)
    x = torch.randn(7, 2, 3, 4) + 0.7
    neuron = block_alif(latency=2, channels=3)
    whole = neuron(x)
    reset_states(neuron)
    neuron.step_mode = "s"
    assert torch.equal(torch.stack([neuron(xt) for xt in x]), whole)


def test_parameters_per_channel_per_layer_or_none():
    assert [p.shape for p in block_alif(channels=5).parameters()] == [(5,), (5,)]
    assert [p.shape for p in block_alif().parameters()] == [(1,), (1,)]
    assert list(block_alif(learnable=False).parameters()) == []


def test_gradients_reach_the_decays_and_the_input_in_the_survey_setting():
    torch.manual_seed(4)
    x = (torch.randn(6, 2, 8, 3, 3) + 1.0).requires_grad_(True)
    neuron = block_alif(channels=8)  # conf defaults: tau 100, latency 1, learnable
    neuron(x).mean().backward()
    for g in (x.grad, neuron.decay.grad, neuron.adapt_decay.grad):
        assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"latency": -1}, r"latency=-1 is out of range; valid: an integer in \[0, inf\)"),
        ({"tau": 1.0}, r"tau=1.0 is out of range; valid: \(1, 1000\]"),
        ({"tau_adapt": 5000.0}, r"tau_adapt=5000.0 is out of range; valid: \(1, 1000\]"),
        ({"beta": -0.1}, r"beta=-0.1 is out of range; valid: \[0, inf\)"),
    ],
)
def test_bad_parameters_fail_in_one_line(params, message):
    with pytest.raises(ValueError, match=message):
        block_alif(**params)


def test_channel_mismatch_says_so():
    with pytest.raises(ValueError, match=r"built for 4 channels \(dim 2 of \[T, B, C, ...\]\), got input \(3, 2, 5\)"):
        block_alif(channels=4)(torch.zeros(3, 2, 5))
