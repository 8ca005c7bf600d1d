"""The three training paradigms of the STDBP project (seed 004), as `method` options.

- ann2snn: the run trains an ANN as usual (or evaluates `ckpt` with trainer.eval_only=true); afterwards
  spikingjelly's rate-coding converter turns it into an IF-neuron SNN once per threshold mode, and each SNN
  is evaluated over max(time_steps) steps, reading the accuracy at every listed T from one pass.
- snn_scratch: surrogate-gradient training with the loss on the output firing rate: MSE to the one-hot
  label (seed 004's choice) or cross-entropy (the engine's default).
- bp_stdp: the model's `stdp_pairs` (synapse, neuron) learn by STDP while the rest learns by backprop, as
  seed 004's script does it: the run's optimizer (Adam in the recipe) for the backprop parameters, plain SGD
  (no momentum) on -dw for the STDP synapses (spikingjelly's rule, summed over T in one pass: spiking/stdp.py).
"""

import copy
import csv
import logging
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from spikingjelly.activation_based import ann2snn, functional
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spikesweep.methods import METHODS
from spikesweep.protocols import HasStdpPairs
from spikesweep.spiking import is_spiking_neuron
from spikesweep.spiking.stdp import BatchedSTDPLearner

log = logging.getLogger(__name__)

Mode = str | float


def parse_mode(mode: Any) -> Mode:
    """'max', a percentile 'P%' (0 < P <= 100) or a fraction of the max in (0, 1], as the converter takes them."""
    text = str(mode).strip().lower()
    if text == "max":
        return "max"
    try:
        value = float(text[:-1]) if text.endswith("%") else float(text)
    except ValueError:
        value = -1.0
    if text.endswith("%") and 0 < value <= 100:
        return f"{value:g}%"
    if not text.endswith("%") and 0 < value <= 1:
        return value
    raise ValueError(f"method.modes: '{mode}' is not a conversion mode; use max, a percentile like 99.9% or a fraction in (0, 1]")


def _as_list(value: Any) -> list[Any]:
    """A sweep axis sets one value (method.modes=max), a run may set several (method.modes=[max,0.5])."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]


def _check_ann(model: nn.Module) -> None:
    if any(is_spiking_neuron(m) for m in model.modules()) or not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise ValueError(
            f"method=ann2snn converts a ReLU ANN; {type(model).__name__} has spiking neurons or no ReLU "
            "(use e.g. recipe=stdbp_ann, model.activation=relu)"
        )


class ANN2SNN:
    """Leaves training alone; converts and evaluates the trained ANN in `after_fit`."""

    def __init__(self, modes: list[Mode], time_steps: list[int], batch_size: int, calibration_batches: int | None) -> None:
        self.modes, self.time_steps = modes, sorted(set(time_steps))
        self.batch_size, self.calibration_batches = batch_size, calibration_batches

    def attach(self, model: nn.Module, device: torch.device) -> None:
        """Fail before training, not after it, when the model cannot be converted."""
        del device
        _check_ann(model)

    def loss(self, x: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        del x, logits, target
        return loss

    def after_fit(self, model: nn.Module, train_set: Dataset, test_set: Dataset, run_dir: Path) -> dict[str, Any]:
        """Convert once per mode, evaluate, write ann2snn.csv and log the accuracy-vs-T table."""
        _check_ann(model)
        device = next(model.parameters()).device
        model.eval()
        calibration: Any = DataLoader(train_set, batch_size=self.batch_size, shuffle=False)
        if self.calibration_batches is not None:
            calibration = list(islice(calibration, self.calibration_batches))
        test = DataLoader(test_set, batch_size=self.batch_size, shuffle=False)
        rows = []
        for mode in self.modes:
            recipe = ann2snn.RateCodingRecipe(dataloader=calibration, mode=mode)
            snn = ann2snn.Converter(recipe, device=device).convert(copy.deepcopy(model))
            for steps, top1 in self._accuracy_by_steps(snn, test, device).items():
                rows.append({"mode": str(mode), "T": steps, "top1": top1})
        ann_top1 = self._accuracy_by_steps(model, test, device, steps=[1])[1]
        with open(run_dir / "ann2snn.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["mode", "T", "top1"])
            writer.writeheader()
            writer.writerows(rows)
        log.info("ANN -> SNN (ANN top-1 %.2f%%), written to %s\n%s", ann_top1, run_dir / "ann2snn.csv", self.table(rows))
        return {"ann_top1": ann_top1, "snn": rows}

    def table(self, rows: list[dict[str, Any]]) -> str:
        """Markdown: one row per mode, one column per T."""
        lines = ["| mode | " + " | ".join(f"T={t}" for t in self.time_steps) + " |", "|---|" + "---|" * len(self.time_steps)]
        for mode in dict.fromkeys(r["mode"] for r in rows):
            cells = [f"{r['top1']:.2f}" for r in rows if r["mode"] == mode]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    @torch.inference_mode()
    def _accuracy_by_steps(
        self, net: nn.Module, loader: DataLoader, device: torch.device, steps: list[int] | None = None
    ) -> dict[int, float]:
        """Top-1 of the output summed over the first T steps, for every T in `steps`, from one run of max(T)."""
        steps = steps or self.time_steps
        correct, total = dict.fromkeys(steps, 0), 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            functional.reset_net(net)
            out = torch.zeros(())
            for t in range(1, steps[-1] + 1):
                out = out + net(x).float().mean(0)
                if t in correct:
                    correct[t] += int((out.argmax(-1) == y).sum())
            total += len(y)
        functional.reset_net(net)
        return {t: 100 * c / total for t, c in correct.items()}


def build_ann2snn(
    kind: str, model_cfg: Any, neuron: Any, meta: Any, modes: Any = ("max",), time_steps: Any = (100,),
    batch_size: int = 100, calibration_batches: int | None = None,
) -> ANN2SNN:
    del kind, model_cfg, neuron, meta  # the ANN and its data come to after_fit
    parsed_steps = [int(t) for t in _as_list(time_steps)]
    if not parsed_steps or min(parsed_steps) < 1:
        raise ValueError(f"method.time_steps={list(_as_list(time_steps))}: need integers >= 1")
    if int(batch_size) < 1 or (calibration_batches is not None and int(calibration_batches) < 1):
        raise ValueError("method.batch_size and method.calibration_batches must be >= 1")
    return ANN2SNN([parse_mode(m) for m in _as_list(modes)], parsed_steps, int(batch_size),
                   None if calibration_batches is None else int(calibration_batches))


class RateLoss:
    """The loss on the T-mean output (the firing rate when the output layer spikes)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def attach(self, model: nn.Module, device: torch.device) -> None:
        del model, device

    def loss(self, x: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MSE pulls the true class's rate to 1 and the others to 0; soft (mixup) targets are used as they are."""
        del x
        if self.kind == "ce":
            return loss
        goal = F.one_hot(target, logits.shape[-1]).to(logits.dtype) if target.dim() == 1 else target.to(logits.dtype)
        return F.mse_loss(logits, goal)


def build_rate_loss(kind: str, model_cfg: Any, neuron: Any, meta: Any, loss: str = "mse") -> RateLoss:
    del kind, model_cfg, neuron, meta
    if loss not in ("mse", "ce"):
        raise ValueError(f"method.loss='{loss}'; valid: mse, ce")
    return RateLoss(loss)


class BPSTDP:
    """STDP for the model's `stdp_pairs`, backprop (the run's optimizer) for every other parameter.

    Seed 004 gives the two rules two optimizers: Adam for the backprop parameters and momentum-free SGD, with
    the same lr and L2 weight decay, on the -dw that STDP writes into the synapses' gradient, after dropping
    their backprop gradient. Here the synapses leave autograd altogether (no backward runs through the
    convolutions: the same update, without the cost of the discarded gradient) and this method makes the SGD
    step itself: w <- w + lr * (dw - weight_decay * w). Under DDP, dw is averaged over the ranks first, as
    a gradient would be, so every rank keeps the same weights.
    """

    def __init__(self, tau_pre: float, tau_post: float, w_min: float, w_max: float, lr: float, weight_decay: float) -> None:
        self.tau_pre, self.tau_post = tau_pre, tau_post
        self.lr, self.weight_decay = lr, weight_decay
        self.bound: Callable[[torch.Tensor], torch.Tensor] = lambda w: w.clamp(w_min, w_max)
        self.learners: list[BatchedSTDPLearner] = []

    def attach(self, model: nn.Module, device: torch.device) -> None:
        """One learner per pair; it records spikes in training only (evaluation batches must not pile up).
        Called before the optimizer is built, which then leaves the synapses out."""
        del device
        pairs = model.stdp_pairs if isinstance(model, HasStdpPairs) else None
        if not pairs:
            raise ValueError(f"method=bp_stdp needs a model listing (synapse, neuron) in stdp_pairs; {type(model).__name__} has none")
        self.learners = [
            BatchedSTDPLearner(synapse, sn, self.tau_pre, self.tau_post, f_pre=self.bound, f_post=self.bound)
            for synapse, sn in pairs
        ]
        for synapse, _ in pairs:
            synapse.requires_grad_(False)

        def record_in_training_only(module: nn.Module, inputs: Any) -> None:
            del inputs
            for learner in self.learners:
                if module.training:
                    learner.enable()
                else:
                    learner.disable()

        model.register_forward_pre_hook(record_in_training_only)

    def loss(self, x: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        del x, logits, target
        return loss

    @torch.no_grad()
    def before_step(self, model: nn.Module) -> None:
        """The SGD step of every STDP synapse from this batch's spikes, then zero traces for the next batch."""
        del model
        world = torch_dist.get_world_size() if torch_dist.is_available() and torch_dist.is_initialized() else 1
        for learner in self.learners:
            delta_w = learner.step(on_grad=False)
            learner.reset()
            if delta_w is None:
                continue
            if world > 1:
                torch_dist.all_reduce(delta_w)
                delta_w /= world
            weight = learner.synapse.weight
            weight.mul_(1 - self.lr * self.weight_decay).add_(delta_w, alpha=self.lr)


def build_bp_stdp(
    kind: str, model_cfg: Any, neuron: Any, meta: Any, tau_pre: float = 2.0, tau_post: float = 100.0,
    w_min: float = -1.0, w_max: float = 1.0, lr: float = 1e-3, weight_decay: float = 5e-4,
) -> BPSTDP:
    del kind, model_cfg, neuron, meta
    if tau_pre < 1 or tau_post < 1 or w_min >= w_max:  # spikingjelly's trace decays by 1/tau per step
        raise ValueError(f"method=bp_stdp: need tau_pre, tau_post >= 1 and w_min < w_max (got {tau_pre}, {tau_post}, {w_min}, {w_max})")
    if lr <= 0 or weight_decay < 0:
        raise ValueError(f"method=bp_stdp: need lr > 0 and weight_decay >= 0 (got {lr}, {weight_decay})")
    return BPSTDP(float(tau_pre), float(tau_post), float(w_min), float(w_max), float(lr), float(weight_decay))


STDBP_METHODS: Mapping[str, Callable[..., Any]] = {
    "ann2snn": build_ann2snn,
    "snn_scratch": build_rate_loss,
    "bp_stdp": build_bp_stdp,
}
for _name, _builder in STDBP_METHODS.items():
    METHODS.register(_name, _builder)
