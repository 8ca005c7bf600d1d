"""Surrogates: exact spikes forward, and a backward equal to the derivative of the smooth primitive."""

import math

import pytest
import torch

from spikesweep.spiking.surrogate import (
    IntegerSurrogate, build_surrogate, derivative_of, staircase_error, surrogate_names,
)

OURS = ["rectangle", "triangle", "trapezoid", "super_spike", "ste", "err_atan", "err_rect"]
BINARY = [n for n in surrogate_names() if n not in ("ste", "err_atan", "err_rect")]


def _points(surrogate, n=64):
    """Random float64 points away from the kinks of piecewise primitives (gradcheck needs smoothness)."""
    g = torch.Generator().manual_seed(0)
    x = torch.empty(n, dtype=torch.float64).uniform_(-2.5, 5.5, generator=g)
    return x


@pytest.mark.parametrize("name", OURS)
def test_backward_is_the_derivative_of_the_primitive(name):
    s = build_surrogate({"name": name})
    x = _points(s).requires_grad_(True)
    s(x).sum().backward()
    ours = x.grad.clone()
    y = x.detach().clone().requires_grad_(True)
    s.primitive(y).sum().backward()
    assert torch.allclose(ours, y.grad, atol=1e-9), name


@pytest.mark.parametrize("name", ["triangle", "err_atan"])
def test_gradcheck_of_the_smooth_primitives(name):
    s = build_surrogate({"name": name})
    x = _points(s, 16).requires_grad_(True)
    assert torch.autograd.gradcheck(s.primitive, (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize(("name", "primitive"), [
    ("sigmoid", lambda x: torch.sigmoid(4.0 * x)),
    ("atan", lambda x: 0.5 + torch.atan(math.pi / 2 * 2.0 * x) / math.pi),
])
def test_spikingjelly_surrogates_match_their_primitives(name, primitive):
    s = build_surrogate({"name": name})
    x = _points(s).float().requires_grad_(True)
    s(x).sum().backward()
    y = x.detach().clone().requires_grad_(True)
    primitive(y).sum().backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-6)


@pytest.mark.parametrize("name", BINARY)
def test_closed_form_derivative_equals_the_surrogates_backward_and_the_primitives_derivative(name):
    """What the compile backend runs in its backward loop: spikingjelly's own backward (float32) and the
    primitive's autograd derivative (float64)."""
    s = build_surrogate({"name": name, "width": 0.7})
    derivative = derivative_of(s)
    for dtype, tolerance in ((torch.float32, 1e-6), (torch.float64, 1e-12)):
        x = _points(s).to(dtype)
        assert torch.allclose(derivative(x, **s._sg_params), _grad(s, x), atol=tolerance), (name, dtype)
    y = _points(s).requires_grad_(True)
    s.primitive_function(y, **s._sg_params).sum().backward()
    assert torch.allclose(derivative(y.detach(), **s._sg_params), y.grad, atol=1e-9), name


def test_integer_surrogates_have_no_binary_derivative():
    assert derivative_of(build_surrogate({"name": "err_atan"})) is None


def _grad(surrogate, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    surrogate(x).sum().backward()
    return x.grad


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("width", [0.5, 2.0])
def test_width_stretches_the_gradient_and_keeps_its_area(name, width):
    """g_width(x) = g(x / width) / width for every binary shape, whatever its own parameters are."""
    x = _points(None)
    stretched = _grad(build_surrogate({"name": name, "width": width}), x)
    reference = _grad(build_surrogate({"name": name}), x / width) / width
    assert torch.allclose(stretched, reference, atol=1e-6), name
    assert not torch.allclose(stretched, _grad(build_surrogate({"name": name}), x)), "width changed nothing"


def test_super_spike_at_width_1_is_spikingjellys():
    from spikingjelly.activation_based import surrogate as sj

    x = _points(None).float()
    assert torch.allclose(_grad(build_surrogate({"name": "super_spike", "alpha": 1.5}), x), _grad(sj.SuperSpike(alpha=1.5), x))


@pytest.mark.parametrize("name", BINARY)
def test_binary_forward_is_exactly_the_step(name):
    x = torch.tensor([-1.0, -1e-4, 0.0, 1e-4, 2.0])
    assert torch.equal(build_surrogate({"name": name})(x), torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))


@pytest.mark.parametrize("name", ["ste", "err_atan", "err_rect"])
def test_integer_forward_is_exactly_the_quantiser(name):
    x = torch.tensor([-3.0, 0.2, 0.5001, 1.49, 2.6, 3.5, 9.0])
    assert torch.equal(build_surrogate({"name": name, "D": 4})(x), torch.tensor([0.0, 0.0, 1.0, 1.0, 3.0, 4.0, 4.0]))


@pytest.mark.parametrize("D", [2, 4, 8])
@pytest.mark.parametrize("eps", [0.1, 0.05, 0.01])
@pytest.mark.parametrize("kind", ["err_atan", "err_rect"])
def test_error_controlled_staircase_stays_within_eps(kind, D, eps):
    s = IntegerSurrogate(kind, D, eps=eps)
    assert staircase_error(s, points=20001) <= eps + 1e-9


def test_smaller_eps_concentrates_the_gradient():
    wide, narrow = IntegerSurrogate("err_atan", 4, eps=0.1), IntegerSurrogate("err_atan", 4, eps=0.01)
    assert narrow.width < wide.width
    at_threshold = torch.tensor([1.5], dtype=torch.float64)
    assert narrow.grad(at_threshold) > wide.grad(at_threshold)


@pytest.mark.parametrize(("cfg", "message"), [
    ({"name": "nope"}, "unknown surrogate 'nope'; valid: "),
    ({"name": "triangle", "gamma": 0.0}, "gamma must be > 0"),
    ({"name": "trapezoid", "ramp": 1.5}, r"ramp \(1.5\) must not exceed 1"),
    ({"name": "atan", "width": 0.0}, "'atan': width must be > 0"),
    ({"name": "triangle", "width": -1.0}, "'triangle': width must be > 0"),
    ({"name": "err_atan", "band": 0.6}, "band must be < 0.5"),
    ({"name": "atan", "beta": 1.0}, "bad parameters"),
])
def test_bad_surrogate_parameters(cfg, message):
    with pytest.raises(ValueError, match=message):
        build_surrogate(cfg)


def test_surrogates_pickle():
    import pickle

    for name in OURS:
        s = build_surrogate({"name": name})
        assert type(pickle.loads(pickle.dumps(s))) is type(s)


def test_plot_of_all_surrogates(tmp_path):
    from spikesweep.spiking.plot import plot_surrogates

    plot_surrogates(tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "s.png").stat().st_size > 10_000
