"""The declared hooks between the engine and what plugs into it: tasks, training methods and models.

The engine, the optimizer factory and the methods call a hook only through these declarations
(`isinstance(x, Protocol)` for the optional ones), never by probing for an undeclared attribute: a
reader finds here every way a plug-in can change a run. Imports nothing of spikesweep.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.data import Dataset


# --- the distributed reductions a task's metrics may need -------------------------------------------------
class Sync(Protocol):
    """What the engine offers a task for combining metrics over the processes of one job."""

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over every rank (identity in a single process)."""

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (a one-element list in a single process): for metrics that
        need the whole split at once, such as mAP. Evaluation shards are strided (rank r of W holds samples
        r, r+W, r+2W, ... of the split), so interleaving the gathered per-sample lists gives the split's order."""


# --- tasks: what is specific to one kind of problem ------------------------------------------------------
class Meter(Protocol):
    """Accumulates a task's metrics over batches; `state()` round-trips through a mid-epoch checkpoint."""

    samples: int  # samples seen by this process (for throughput)

    def update(self, outputs: torch.Tensor, targets: Any, loss: torch.Tensor | None = None) -> None: ...

    def compute(self, sync: Sync) -> dict[str, float]:
        """The metrics over everything seen (all ranks), keys without a split prefix (`loss`, `top1`)."""

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class Task(Protocol):
    """One kind of problem (classification, detection): its targets, loss, metrics and what "best" means.

    The engine names no metric: it asks the task. Metric keys are prefixed by the engine with the split
    (`train_`, `test_`, `val_`); `best_metric` names the one (without prefix) that picks the best epoch,
    on the validation split when one is held out, else on the test split.
    """

    name: str
    best_metric: str
    higher_is_better: bool
    #: metrics (with split prefix) that `compare` and `report` show for this task, most important first
    report_columns: tuple[str, ...]

    def collate(self) -> Callable[[list[Any]], Any] | None:
        """The DataLoader collate function; None for torch's default (fixed-size targets)."""

    def start_epoch(self, epoch: int, seed: int) -> None:
        """Called before every training epoch (per-epoch augmentation choices, resume-safe)."""

    def batch_to(self, batch: Any, device: torch.device, train: bool) -> tuple[torch.Tensor, Any, Any]:
        """(inputs, targets for metrics, targets for the loss) on `device`; training batches may be mixed."""

    def outputs(self, model_output: torch.Tensor) -> torch.Tensor:
        """What the loss and the metrics read from the model's [T, B, ...] output (e.g. its T-mean)."""

    def loss(self, outputs: torch.Tensor, loss_targets: Any) -> torch.Tensor: ...

    def meter(self) -> Meter:
        """A fresh accumulator of this task's metrics (training or evaluation)."""

    def epoch_line(self, metrics: Mapping[str, float]) -> str:
        """The end-of-epoch log line's task part, from the epoch's prefixed metrics."""


# --- training methods: paradigms beyond plain BPTT -------------------------------------------------------
@runtime_checkable
class TrainingMethod(Protocol):
    """A training paradigm beyond plain BPTT (the `method` config group); `bptt` is the absence of one."""

    def attach(self, model: nn.Module, device: torch.device) -> None:
        """Called once, after the model is on its device and before the optimizer is built: parameters it
        takes out of autograd (requires_grad=False) stay out of the optimizer."""

    def loss(self, x: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss to minimise, given the batch, the task's outputs, the task's loss on them and the loss
        target it used (class indices, or soft labels under mixup)."""


@runtime_checkable
class OwnsBackward(Protocol):
    """A method that runs a batch's forward and backward itself (online training: one backward per step)."""

    def forward_backward(
        self, x: torch.Tensor, target: Any, criterion: Callable[..., torch.Tensor],
        autocast: Callable[[], AbstractContextManager], backward: Callable[[torch.Tensor], None],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the outputs and the loss, both detached."""


@runtime_checkable
class EditsGradients(Protocol):
    """A method with its own update rule (STDP): called after backward (gradients unscaled and clipped)
    and before the optimizer step."""

    def before_step(self, model: nn.Module) -> None: ...


@runtime_checkable
class RunsAfterFit(Protocol):
    """A method with a last act on the trained (or evaluated) model, e.g. ANN -> SNN conversion; its result
    is stored under the method's name in summary.json."""

    def after_fit(self, model: nn.Module, train_set: Dataset, test_set: Dataset, run_dir: Path) -> dict[str, Any]: ...


# --- optional model hooks ----------------------------------------------------------------------------------
@runtime_checkable
class EpochScheduled(Protocol):
    """A model that keeps a schedule of its own (e.g. a kernel width), set before every epoch (resume-safe)."""

    def set_epoch(self, epoch: int) -> None: ...


@runtime_checkable
class HasOptimizerGroups(Protocol):
    """A model whose parameters need their own lr or weight decay (learnable delays): dicts
    {"params", "lr", "weight_decay"}; the schedule scales every group alike."""

    def optimizer_groups(self) -> Iterable[dict[str, Any]]: ...


@runtime_checkable
class HasCheckpointBlocks(Protocol):
    """A model that lists the blocks `trainer.checkpoint_activations=blocks` recomputes in backward."""

    def checkpoint_blocks(self) -> Iterator[nn.Module]: ...


@runtime_checkable
class HasFeatureLayers(Protocol):
    """A model that names the activation modules feature distillation matches between student and teacher."""

    feature_layers: list[nn.Module]


@runtime_checkable
class HasStdpPairs(Protocol):
    """A model that lists its (synapse, neuron) pairs for BP+STDP's local rule."""

    stdp_pairs: list[tuple[nn.Module, nn.Module]]


@runtime_checkable
class RunsStepByStep(Protocol):
    """A model that online training can drive one time step at a time, when `runs_step_by_step` says so (a
    readout that integrates over the whole sequence has no per-step form)."""

    runs_step_by_step: bool

    def time_major(self, x: torch.Tensor) -> torch.Tensor:
        """The input as [T, B, ...]."""

    def run_steps(self, x_seq: torch.Tensor) -> torch.Tensor:
        """The outputs of the given steps, neuron states carried over from the previous call."""
