"""Neuron families by name: the `neuron` config group resolves here.

`build_neuron` returns a factory so a model can create one neuron per layer and still pass per-layer
settings without knowing the family. What a model may pass is the CORE set below, the same names for
every family; each family takes all of them, gives each a meaning, and refuses (one line, with the
reason) a value it cannot honour. A family's own parameters (tau, decay, k, D, ...) come from its config.

Every parameter of every family has a range (`Range`), checked when the neuron is built: `neuron.tau=0`
is refused with one line naming the key, the value and the valid range, never a ZeroDivisionError later.

A family is one file that registers its builder with `@neuron_family(name, **ranges)`; the builder's
keyword arguments are its parameters, each of which must have a range.
"""

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from spikesweep.registry import Registry

NeuronFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class Range:
    """The valid values of one parameter: numbers in an interval (integers only if `integer`), one of
    `choices`, or true/false (`boolean`); `optional` admits null. `why` explains a range narrower than
    the parameter's meaning (a family that cannot honour every value)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    choices: tuple[str, ...] = ()
    boolean: bool = False
    optional: bool = False
    why: str = ""

    def admits(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.boolean:
            return isinstance(value, bool)
        if self.choices:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.integer and value != int(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.boolean:
            text = "true or false"
        elif self.choices:
            text = "one of " + ", ".join(self.choices)
        elif self.low == self.high:
            text = f"{self.low:g}"
        else:
            low = "(-inf" if self.low == -math.inf else f"{'(' if self.low_open else '['}{self.low:g}"
            high = "inf)" if self.high == math.inf else f"{self.high:g}{')' if self.high_open else ']'}"
            text = f"an integer in {low}, {high}" if self.integer else f"{low}, {high}"
        text = f"{text} or null" if self.optional else text
        return f"{text} ({self.why})" if self.why else text


def above(low: float, **kw: Any) -> Range:
    return Range(low=low, low_open=True, **kw)


def at_least(low: float, **kw: Any) -> Range:
    return Range(low=low, **kw)


def between(low: float, high: float, **kw: Any) -> Range:
    return Range(low=low, high=high, **kw)


BOOL = Range(boolean=True)
ANY_REAL = Range()


def one_of(*choices: str) -> Range:
    return Range(choices=tuple(choices))


#: What a model may pass to any neuron (`neuron(channels=C)`), with the range every family accepts unless
#: it narrows it with a reason. Every family's builder takes all of these keyword arguments.
CORE: dict[str, Range] = {
    # the firing threshold (PSN families: the initial value of their learnable threshold; multispike: the
    # input worth one spike, s = round(clamp(x / v_threshold, 0, D)) / Norm)
    "v_threshold": above(0.0),
    # T the layer runs for: PSN and masked PSN need it to size their T x T weight; the others run any T
    "time_steps": at_least(1, integer=True, optional=True),
    # the layer's channels (dim 2 of [T, B, C, ...]): per-channel parameters where a family has them
    # (block_alif, multispike norm=learnable_channel); elementwise families need no layout
    "channels": at_least(1, integer=True, optional=True),
    # a spike's value is 1 / norm_value (multispike's Norm; null = D); binary families emit 1 and take only 1
    "norm_value": above(0.0, optional=True),
}
#: What binary families allow for norm_value.
BINARY_NORM = between(1.0, 1.0, optional=True, why="binary spikes carry the value 1; a Norm needs neuron=multispike")

NEURONS = Registry("neuron", "spikesweep.spiking.neurons")
RANGES: dict[str, dict[str, Range]] = {}  # family -> parameter -> valid values (CORE included)
INTEGER_SPIKES: set[str] = set()  # families that emit integer spikes (and so may take an integer surrogate)


def neuron_family(name: str, integer_spikes: bool = False, **ranges: Range) -> Callable:
    """Register `builder(surrogate, **params)` as neuron family `name`; `ranges` covers every parameter
    that is not in CORE (and may narrow a CORE range). Checked here, so a new family cannot skip either."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        params = set(inspect.signature(builder).parameters) - {"surrogate"}
        if missing := sorted(set(CORE) - params):
            raise TypeError(f"neuron family '{name}': its builder must take the core parameters {missing}")
        if unranged := sorted(params - set(CORE) - set(ranges)):
            raise TypeError(f"neuron family '{name}': no range given for {unranged}")
        NEURONS.register(name, builder, _module=builder.__module__)
        RANGES[name] = {**CORE, **ranges}
        if integer_spikes:
            INTEGER_SPIKES.add(name)
        return builder

    return wrap


def neuron_names() -> list[str]:
    return NEURONS.names()


def check_params(name: str, params: Mapping[str, Any]) -> None:
    """One-line ValueError for a parameter the family does not have or a value outside its range."""
    ranges = RANGES[name]
    if "backend" in params and "backend" not in ranges and params["backend"] not in ("auto", "torch"):
        raise ValueError(f"neuron '{name}' has only the torch backend; backend={params['backend']} needs if or lif")
    if unknown := sorted(set(params) - set(ranges) - {"backend"}):
        raise ValueError(f"neuron '{name}': unknown parameter(s) {unknown}; valid: {sorted(ranges)}")
    for key, value in params.items():
        if key in ranges and not ranges[key].admits(value):
            raise ValueError(f"neuron '{name}': {key}={value!r} is out of range; valid: {ranges[key]}")


def build_neuron(
    cfg: Mapping[str, Any], surrogate: Any, time_steps: int | None = None, device: Any = None
) -> NeuronFactory:
    """Return `factory(**overrides) -> nn.Module` for the neuron described by `cfg` ({name, backend, **params}).

    `time_steps` (the dataset's T) reaches every family as the core parameter of that name.
    `device`, where the caller knows it, lets `backend: auto` choose for it rather than for torch's default.
    """
    params = dict(cfg)
    name = params.pop("name")
    builder = NEURONS.get(name)
    check_params(name, params)
    if "backend" not in RANGES[name]:
        params.pop("backend", None)  # auto or torch: the only implementation such a family has
    elif params.get("backend") == "auto":
        from spikesweep.spiking.neurons.lif import auto_backend

        params["backend"] = auto_backend(surrogate, device)
    if getattr(surrogate, "integer", False) and name not in INTEGER_SPIKES:
        raise ValueError(
            f"neuron '{name}' emits binary spikes but the surrogate is for integer spikes; "
            "use a binary surrogate (atan, sigmoid, rectangle, triangle, ...)"
        )
    defaults = {"time_steps": time_steps} if time_steps is not None else {}
    check_params(name, defaults)

    def factory(**overrides: Any) -> nn.Module:
        check_params(name, overrides)
        return builder(surrogate=surrogate, **{**defaults, **params, **overrides})

    return factory
