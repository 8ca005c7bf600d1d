"""Surrogate gradients by name: the `surrogate` config group resolves here.

Binary surrogates: forward is the Heaviside step H(x) (x = membrane - threshold); backward is the
derivative of a smooth primitive. spikingjelly's built-ins are used where they exist (its fused kernels
recognise them); the shapes it lacks are ours, each an autograd Function over its `grad` formula.

Every binary surrogate takes `width`, one stretch factor that means the same for all of them:
g_width(x) = g(x / width) / width, the shape at width 1 stretched along x with its area kept. It is what
lets a sweep compare shapes at equal widths (`surrogate_shapes`) although their own parameters differ
(alpha is a sharpness, gamma a half-width). It is folded into the parameters, so spikingjelly's classes
and fused paths still see a plain surrogate: alpha / width, or every length times width.

Integer surrogates (for MultiSpike neurons, SDT v3): forward is the quantiser q(x) = round(clamp(x, 0, D));
backward is `grad`. "Error-controlled" surrogates (err_atan, err_rect) are defined in `IntegerSurrogate`.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from spikingjelly.activation_based import surrogate as sj
from torch import nn

from spikesweep.registry import Registry


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: "Surrogate") -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return surrogate.spike(x)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.grad(x), None


class Surrogate(nn.Module):
    """Exact spikes forward, `grad(x)` backward; `primitive(x)` is the smooth function `grad` derives from.

    Binary surrogates keep their parameters in `_sg_params`, their primitive as a static
    `primitive_function(x, **params)` (spikingjelly's convention) and its closed-form derivative as a static
    `derivative_function(x, **params)`, so fused code paths (the `compile` backend) can treat ours and
    spikingjelly's alike (`derivative_of`).
    """

    integer = False  # True for surrogates of the integer quantiser (MultiSpike neurons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SpikeFn.apply(x, self)

    def spike(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0).to(x.dtype)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return self.derivative_function(x, **self._sg_params)

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return self.primitive_function(x, **self._sg_params)


def _positive(name: str, **values: float) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"surrogate '{name}': {key} must be > 0, got {value}")


class Rectangle(Surrogate):
    """grad = 1/width inside |x| < width/2: a box of unit area (GAC ImageNet: width 1 around threshold).

    Its width is the common stretch factor itself: the box at width 1 is one unit wide.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        _positive("rectangle", width=width)
        self._sg_params = {"width": float(width)}

    @staticmethod
    def derivative_function(x, width: float):
        return (x.abs() < width / 2).to(x.dtype) / width

    @staticmethod
    def primitive_function(x, width: float):
        return torch.clamp(x / width + 0.5, 0.0, 1.0)


class Triangle(Surrogate):
    """GAC's ZIF: grad = (1/g)^2 max(0, g - |x|), a triangle of unit area and half-width g = gamma x width."""

    def __init__(self, gamma: float = 1.0, width: float = 1.0) -> None:
        super().__init__()
        _positive("triangle", gamma=gamma, width=width)
        self._sg_params = {"gamma": float(gamma) * float(width)}

    @staticmethod
    def derivative_function(x, gamma: float):
        return torch.clamp(gamma - x.abs(), min=0.0) / gamma**2

    @staticmethod
    def primitive_function(x, gamma: float):
        y = torch.clamp(x, -gamma, gamma)
        return 0.5 + y / gamma - torch.sign(y) * y**2 / (2 * gamma * gamma)


class Trapezoid(Surrogate):
    """grad = 1/width on the flat top, falling linearly to 0 over flanks of length ramp x width; unit area.

    The flank is a fraction of the width so that `width` alone stretches the shape, as for every surrogate.
    """

    def __init__(self, width: float = 1.0, ramp: float = 0.5) -> None:
        super().__init__()
        _positive("trapezoid", width=width, ramp=ramp)
        if ramp > 1:
            raise ValueError(f"surrogate 'trapezoid': ramp ({ramp}) must not exceed 1 (it is a fraction of the width)")
        self._sg_params = {"width": float(width), "ramp": float(ramp) * float(width)}

    @staticmethod
    def derivative_function(x, width: float, ramp: float):
        return torch.clamp((width / 2 + ramp / 2 - x.abs()) / ramp, 0.0, 1.0) / width

    @staticmethod
    def primitive_function(x, width: float, ramp: float):
        """The integral of grad from -inf: a linear top between two quadratic flanks."""
        a, b, h = width / 2 - ramp / 2, width / 2 + ramp / 2, 1.0 / width
        u = torch.clamp(x.abs(), max=b)
        on_ramp = torch.clamp(u - a, min=0.0)
        return 0.5 + torch.sign(x) * h * (torch.clamp(u, max=a) + on_ramp - on_ramp**2 / (2 * ramp))


class SuperSpike(Surrogate):
    """grad = alpha width / (|x| + width)^2: spikingjelly's SuperSpike (alpha / (1 + |x|)^2) at width 1.

    Ours because spikingjelly's alpha is an amplitude, so its SuperSpike has no width to stretch (and no
    primitive, which the compile backend needs).
    """

    def __init__(self, alpha: float = 1.0, width: float = 1.0) -> None:
        super().__init__()
        _positive("super_spike", alpha=alpha, width=width)
        self._sg_params = {"alpha": float(alpha), "width": float(width)}

    @staticmethod
    def derivative_function(x, alpha: float, width: float):
        return alpha * width / (x.abs() + width) ** 2

    @staticmethod
    def primitive_function(x, alpha: float, width: float):
        return alpha * x / (x.abs() + width)


def _sharpened(name: str, kind: type[nn.Module], alpha: float) -> Callable[..., nn.Module]:
    """A spikingjelly surrogate whose alpha is a sharpness, g(x) = alpha f(alpha x): width divides alpha."""

    def build(alpha: float = alpha, width: float = 1.0) -> nn.Module:
        _positive(name, alpha=alpha, width=width)
        return kind(alpha=float(alpha) / float(width))

    return build


class IntegerSurrogate(Surrogate):
    """Surrogates of q(x) = round(clamp(x, 0, D)), the MultiSpike quantiser.

    - `ste`: grad = 1 inside [0, D], 0 outside (straight-through inside the clamp range; upstream SDT v3).
    - error-controlled (`err_atan`, `err_rect`): for the backward only, q is replaced by a smooth staircase
      S(x) = sum_{k=0}^{D-1} s((x - (k + 1/2)) / w) of D unit steps centred on the rounding thresholds
      k + 1/2, with s an ATan step (1/2 + atan(pi u / 2) / pi) or a linear ramp (clamp(u + 1/2, 0, 1)), and
      grad(x) = S'(x). The contract, tested: |S(x) - q(x)| <= eps at every x farther than `band` from all
      thresholds. The ramp meets it exactly (w = 2 band, so S = q outside the bands and eps is met with
      zero error); for ATan, whose tails add up across the D steps, w is the largest width meeting eps,
      found by bisection. Smaller eps or band concentrates the gradient near the thresholds.
    """

    integer = True

    def __init__(self, kind: str, D: int = 4, eps: float = 0.05, band: float = 0.25) -> None:
        super().__init__()
        if int(D) < 1:
            raise ValueError(f"surrogate '{kind}': D must be >= 1, got {D}")
        _positive(kind, eps=eps, band=band)
        if band >= 0.5:
            raise ValueError(f"surrogate '{kind}': band must be < 0.5 (half the distance between thresholds)")
        self.kind, self.D, self.eps, self.band = kind, int(D), float(eps), float(band)
        self.width = {"ste": 1.0, "err_rect": 2 * self.band, "err_atan": _atan_width(self.D, eps, band)}[kind]

    def spike(self, x):
        return torch.round(torch.clamp(x, 0, self.D))

    def _steps(self, x):
        return [(x - (k + 0.5)) / self.width for k in range(self.D)]

    def grad(self, x):
        if self.kind == "ste":
            return ((x >= 0) & (x <= self.D)).to(x.dtype)
        if self.kind == "err_rect":
            return sum((u.abs() < 0.5).to(x.dtype) for u in self._steps(x)) / self.width
        return sum(1.0 / (2 * (1 + (math.pi / 2 * u) ** 2)) for u in self._steps(x)) / self.width

    def primitive(self, x):
        if self.kind == "ste":
            return torch.clamp(x, 0, self.D)
        if self.kind == "err_rect":
            return sum(torch.clamp(u + 0.5, 0.0, 1.0) for u in self._steps(x))
        return sum(0.5 + torch.atan(math.pi / 2 * u) / math.pi for u in self._steps(x))


class Staircase(Surrogate):
    """A binary surrogate used by an integer neuron: forward q(x) = round(clamp(x, 0, D)); backward the
    binary surrogate's gradient placed at each of the D rounding thresholds, sum_k g(x - (k + 1/2)).

    This is what `surrogate=atan` or `surrogate=trapezoid` means for SDT v3's MultiSpike neuron (seed 000's
    ablation): the binary shape, repeated at every step of the staircase.
    """

    integer = True

    def __init__(self, binary: nn.Module, D: int) -> None:
        super().__init__()
        self.binary, self.D = binary, int(D)

    def spike(self, x):
        return torch.round(torch.clamp(x, 0, self.D))

    def grad(self, x):
        with torch.enable_grad():
            u = x.detach().requires_grad_(True)
            total = sum(self.binary(u - (k + 0.5)).sum() for k in range(self.D))
            return torch.autograd.grad(total, u)[0]


def staircase_error(surrogate: IntegerSurrogate, points: int = 8001) -> float:
    """max |S - q| over x farther than `band` from every threshold (the error-control contract)."""
    d = surrogate.D
    xs = torch.linspace(-2.0, d + 2.0, points, dtype=torch.float64)
    near = torch.stack([(xs - (k + 0.5)).abs() for k in range(d)]).min(0).values < surrogate.band
    error = (surrogate.primitive(xs) - torch.round(torch.clamp(xs, 0, d))).abs()
    return float(error[~near].max())


def _atan_width(D: int, eps: float, band: float) -> float:
    """Largest ATan step width meeting the contract; the error grows with the width, so bisect."""
    probe = IntegerSurrogate.__new__(IntegerSurrogate)
    probe.kind, probe.D, probe.band = "err_atan", D, band

    def error(width: float) -> float:
        probe.width = width
        return staircase_error(probe)

    lo, hi = 1e-6, 1.0
    if error(hi) <= eps:
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if error(mid) <= eps else (lo, mid)
    return lo


def _sigmoid_derivative(x, alpha: float):
    s = torch.sigmoid(alpha * x)
    return alpha * s * (1.0 - s)


def _atan_derivative(x, alpha: float):
    return alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2)


def _piecewise_quadratic_derivative(x, alpha: float):
    return torch.clamp(alpha - alpha**2 * x.abs(), min=0.0)


def _erf_derivative(x, alpha: float):
    return torch.exp(-((alpha * x) ** 2)) * (alpha / math.sqrt(math.pi))


def _softsign_derivative(x, alpha: float):
    return 1 / (2 * alpha * (1 / alpha + x.abs()) ** 2)


# spikingjelly's backward formulas (its *_backward functions), without the grad_output factor
SPIKINGJELLY_DERIVATIVES: Mapping[type, Callable[..., torch.Tensor]] = {
    sj.Sigmoid: _sigmoid_derivative,
    sj.ATan: _atan_derivative,
    sj.PiecewiseQuadratic: _piecewise_quadratic_derivative,
    sj.Erf: _erf_derivative,
    sj.SoftSign: _softsign_derivative,
}


def derivative_of(surrogate: nn.Module) -> Callable[..., torch.Tensor] | None:
    """`derivative(x, **surrogate._sg_params)` of a binary surrogate, ours or spikingjelly's; None if unknown."""
    if is_integer(surrogate) or not hasattr(surrogate, "_sg_params"):
        return None
    return getattr(type(surrogate), "derivative_function", None) or SPIKINGJELLY_DERIVATIVES.get(type(surrogate))


SURROGATES = Registry("surrogate", "spikesweep.spiking.surrogate")
for _name, _kind, _alpha in (("sigmoid", sj.Sigmoid, 4.0), ("atan", sj.ATan, 2.0),
                             ("piecewise_quadratic", sj.PiecewiseQuadratic, 1.0), ("erf", sj.Erf, 2.0),
                             ("softsign", sj.SoftSign, 2.0)):
    SURROGATES.register(_name, _sharpened(_name, _kind, _alpha))
for _name, _cls in (("super_spike", SuperSpike), ("rectangle", Rectangle), ("triangle", Triangle),
                    ("trapezoid", Trapezoid)):
    SURROGATES.register(_name, _cls)


@SURROGATES.register("ste")
def _ste(D: int = 4) -> nn.Module:
    return IntegerSurrogate("ste", D)


@SURROGATES.register("err_atan")
def _err_atan(D: int = 4, eps: float = 0.05, band: float = 0.25) -> nn.Module:
    return IntegerSurrogate("err_atan", D, eps, band)


@SURROGATES.register("err_rect")
def _err_rect(D: int = 4, band: float = 0.25) -> nn.Module:
    return IntegerSurrogate("err_rect", D, band=band)


def surrogate_names() -> list[str]:
    return SURROGATES.names()


def is_integer(surrogate: nn.Module) -> bool:
    """Integer surrogates quantise to {0..D}; binary neurons cannot use them, MultiSpike needs them."""
    return bool(getattr(surrogate, "integer", False))


def build_surrogate(cfg: Mapping[str, Any]) -> nn.Module:
    """Build the surrogate described by a `surrogate` config node ({name, **params})."""
    params = dict(cfg)
    name = params.pop("name")
    builder = SURROGATES.get(name)
    try:
        return builder(**params)
    except TypeError as err:
        raise ValueError(f"surrogate '{name}': bad parameters {params} ({err})") from err
