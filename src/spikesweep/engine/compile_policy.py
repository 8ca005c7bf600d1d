"""What a training run compiles, decided on the evidence of its own first steps.

Compiling costs seconds to minutes once and saves a share of every step after; whether it pays depends on the
run at hand (layer sizes, T, how many steps, whether the compiled code is already saved on this machine).
So the first steps run eager and are timed; after `TIMED_STEPS` of them the run compiles only what saves
more over its remaining steps than it costs:
- the neuron loops of the `compile` backend (loop_cache: saved loops load in milliseconds and always count);
- the whole model under `trainer.compile: auto` (`trainer.compile: true` compiles from the first step).
Each decision is one log line with its figures. The crossovers are in BENCHMARKS.md ("When compiling pays").
"""

import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from spikesweep.spiking.neurons import loop_cache

log = logging.getLogger("spikesweep")

TIMED_STEPS = 2  # the first step carries one-off costs (allocations, lazy set-up): the second is timed too
#: How much faster a compiled train step runs than the eager one, by device: on a GPU a cautious figure below
#: the 3.7x measured on spikingformer_4_384; on a CPU the 1.11x of `bench compile --model` on small_cnn.
MODEL_SPEEDUP = {"cuda": 1.5, "cpu": 1.1}
DEFAULT_MODEL_COMPILE_S = 60.0  # before this machine has a record (model_compile_seconds.json)
_MODEL_TIMES = "model_compile_seconds.json"


def _record_dir() -> Path | None:
    root = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    return Path(root) if root else None


def _model_compile_s() -> float:
    folder = _record_dir()
    times = loop_cache.compile_times(folder, _MODEL_TIMES) if folder else []
    return statistics.median(times[-20:]) if times else DEFAULT_MODEL_COMPILE_S


def _note_model_compile(seconds: float) -> None:
    folder = _record_dir()
    if folder is not None:
        loop_cache.note_compile_time(folder, seconds, _MODEL_TIMES)


def model_compile_pays(step_s: float, steps_left: int, compile_s: float, speedup: float) -> bool:
    return step_s * (1 - 1 / speedup) * steps_left > compile_s


class CompilePolicy:
    """Asked by the engine after each of the first optimizer steps (`after_step`), which returns the module
    the following steps run: the same one, or the model compiled."""

    def __init__(self, setting: bool | str, total_steps: int, agree: Callable[[bool], bool]) -> None:
        """`agree`: every rank of a distributed run takes the same decision (any rank's yes)."""
        self.setting, self.total_steps, self.agree = setting, total_steps, agree
        self.steps, self.step_started, self.last_step_s = 0, time.perf_counter(), 0.0
        self.compiled_at: int | None = None
        loop_cache.hold_compiles()

    def close(self) -> None:
        loop_cache.release_compiles()

    def before_step(self) -> None:
        self.step_started = time.perf_counter()

    def after_step(self, net: nn.Module) -> nn.Module:
        self.steps += 1
        step_s = time.perf_counter() - self.step_started
        if self.compiled_at is not None and self.steps == self.compiled_at + 1:  # its compile happened in this step
            _note_model_compile(max(step_s - self.last_step_s, 0.0))
        self.last_step_s = step_s
        if self.steps != TIMED_STEPS and self.steps != self.total_steps:
            return net
        steps_left = self.total_steps - self.steps
        decision = loop_cache.decide_compiles(self.steps, steps_left)
        if decision is not None:
            log.info(decision.line(steps_left))
        if self.setting != "auto" or steps_left == 0:
            return net
        compile_s = _model_compile_s()
        device = next(net.parameters()).device.type
        speedup = MODEL_SPEEDUP.get(device, MODEL_SPEEDUP["cpu"])
        pays = self.agree(model_compile_pays(step_s, steps_left, compile_s, speedup))
        saved = step_s * (1 - 1 / speedup) * steps_left
        log.info("trainer.compile=auto: %s (about %.0f s to compile against about %.0f s saved over the %d steps "
                 "to come at %.0f ms per eager step, %gx faster compiled on %s)",
                 "compiling the model" if pays else "the model stays eager", compile_s, saved, steps_left,
                 step_s * 1e3, speedup, device)
        if not pays:
            return net
        self.compiled_at = self.steps
        return torch.compile(net)
