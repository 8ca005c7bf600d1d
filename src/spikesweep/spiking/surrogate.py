"""Surrogate gradients by name: the `surrogate` config group resolves here.

Each entry maps a config name to a constructor taking the config's parameters. spikingjelly's built-in
surrogates are used where they exist (their fused GPU kernels recognise them).
"""

from collections.abc import Callable, Mapping
from typing import Any

from spikingjelly.activation_based import surrogate as sj

SURROGATES: dict[str, Callable[..., Any]] = {
    "sigmoid": lambda alpha=4.0: sj.Sigmoid(alpha=float(alpha)),
    "atan": lambda alpha=2.0: sj.ATan(alpha=float(alpha)),
    "piecewise_quadratic": lambda alpha=1.0: sj.PiecewiseQuadratic(alpha=float(alpha)),
    "erf": lambda alpha=2.0: sj.Erf(alpha=float(alpha)),
    "softsign": lambda alpha=2.0: sj.SoftSign(alpha=float(alpha)),
    "super_spike": lambda alpha=1.0: sj.SuperSpike(alpha=float(alpha)),
}


def surrogate_names() -> list[str]:
    return sorted(SURROGATES)


def build_surrogate(cfg: Mapping[str, Any]) -> Any:
    """Build the surrogate described by a `surrogate` config node ({name, **params})."""
    params = dict(cfg)
    name = params.pop("name")
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate '{name}'; valid: {', '.join(surrogate_names())}")
    try:
        return SURROGATES[name](**params)
    except TypeError as err:
        raise ValueError(f"surrogate '{name}': bad parameters {params} ({err})") from err
