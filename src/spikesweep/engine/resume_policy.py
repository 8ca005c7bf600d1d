"""Whether a run directory may be resumed with the config given now, decided before anything is written.

A restart continues what `checkpoints/last.pt` was trained with. Any key that can change the result (seed,
neuron, model, dataset, optimizer, lr, batch size, ...) must be the same; a change is refused with one line
naming every changed key. Only the keys in RESULT_NEUTRAL may differ: where files live, what logs, and
how the same computation is carried out. Training longer is the one sanctioned change: raise
`trainer.epochs` together with `resume.extend=true`; the extension is recorded in the checkpoint, in
summary.json (`extensions`) and in train.log.
"""

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from spikesweep.config_schema import ConfigError

#: Keys that may differ between a checkpoint's config and the config that resumes it (glob patterns).
RESULT_NEUTRAL = (
    "logger.*",  # where metrics are also sent
    "paths.*",  # where outputs, data and caches live
    "hydra.*",
    "name",  # the output folder and wandb group
    "resume.*",  # this policy's own switches
    "dataset.root",  # where the dataset's files are, not which samples
    "dataset.cache_dir",
    "dataset.download",
    "dataset.verify_checksums",
    "trainer.device",  # a requeued job may land on another device
    "trainer.eval_batch_size",  # evaluation: per-sample results do not depend on the batch
    "trainer.dist_eval",
    "trainer.fold_bn_eval",  # the same logits from a folded copy
    "trainer.compile",  # the same computation, compiled or not
    "trainer.channels_last",
    "trainer.checkpoint_activations",  # recomputed in backward: the same values
    "neuron.backend",  # the same neuron dynamics, another kernel
    # Worker count: which random augmentations are drawn changes (each worker has its own RNG stream), not
    # their distribution; lowering it is the fix for a loader killed for memory, then resume.
    "trainer.num_workers",
)
EXTEND_KEY = "trainer.epochs"

log = logging.getLogger(__name__)


class ResumeRefused(ConfigError):
    """A restart whose config would change what the run directory's checkpoint was trained with."""


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, child in node.items():
            out |= flatten(child, f"{prefix}.{key}" if prefix else str(key))
        return out if out or not prefix else {prefix: {}}
    return {prefix: node}


def changed_keys(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (saved, current)} for every leaf that differs and is not result-neutral."""
    old, new = flatten(saved), flatten(current)
    missing = object()
    changes = {}
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, missing), new.get(key, missing)
        if a != b and not any(fnmatch(key, pattern) for pattern in RESULT_NEUTRAL):
            changes[key] = ("(absent)" if a is missing else a, "(absent)" if b is missing else b)
    return changes


def check(saved: Mapping[str, Any] | None, current: Mapping[str, Any], source: str) -> dict[str, Any] | None:
    """Raise ResumeRefused if `current` may not resume a checkpoint trained with `saved`; return the
    extension record ({"epochs": [old, new]}) when the run is being extended, else None."""
    if saved is None:  # a checkpoint from before configs were stored: nothing to compare
        return None
    changes = changed_keys(saved, current)
    extend = bool(flatten(current).get("resume.extend", False))
    extension = None
    if EXTEND_KEY in changes and extend:
        old, new = changes[EXTEND_KEY]
        if isinstance(old, int) and isinstance(new, int) and new > old:
            extension = {"epochs": [old, new]}
            del changes[EXTEND_KEY]
    for key in [k for k in changes if k.endswith(".name")]:  # another option of a group: name it, not its keys
        group = key.removesuffix(".name")
        changes = {k: v for k, v in changes.items() if not k.startswith(f"{group}.")} | {group: changes[key]}
    if changes:
        listed = ", ".join(f"{k} {_show(a)} -> {_show(b)}" for k, (a, b) in sorted(changes.items()))
        hint = "restore them, or start a new run directory"
        if EXTEND_KEY in changes:
            hint += "; to train longer, raise trainer.epochs and add resume.extend=true"
        raise ResumeRefused(f"cannot resume {source}: the config changed what it trained ({listed}); {hint}")
    return extension


def _show(value: Any) -> str:
    return repr(value) if value == "" else str(value)


def decide(last: Path, current: Mapping[str, Any], eval_only: bool) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the checkpoint to resume or None, the extension record or None), before the run writes anything:
    an unreadable last.pt or a changed config raises ResumeRefused and the run directory stays as it was."""
    # imported here: it loads torch, which the process that only submits a sweep never needs
    from spikesweep.engine import checkpoint as ckpt

    if eval_only or not last.exists():
        return None, None
    try:
        state = ckpt.load(last)
    except ckpt.CheckpointError as err:
        raise ResumeRefused(f"{err}; move it away to start this run directory afresh") from err
    return state, check(state.get("config"), current, str(last.parent.parent))


def extensions(resume: Mapping[str, Any] | None, extension: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The run's extensions so far (from its checkpoint), with this restart's appended and logged."""
    past = list((resume or {}).get("extensions") or [])
    if extension is None:
        return past
    done = int(resume["epoch"]) + (0 if resume.get("step_in_epoch") else 1)  # epochs finished before this restart
    old, new = extension["epochs"]
    log.info("extending training: trainer.epochs %d -> %d after %d epochs done (resume.extend=true)", old, new, done)
    return [*past, extension | {"after_epochs": done, "at": datetime.now(UTC).isoformat(timespec="seconds")}]
