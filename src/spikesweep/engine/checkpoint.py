"""Checkpoints that never exist half-written, and resume discovery.

A checkpoint is written to a temporary file in the same directory, fsynced, then renamed over the target:
a crash at any point leaves either the previous complete file or the new complete file.
"""

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikesweep.engine.failures import is_worker_death, quiet_further_worker_deaths
from spikesweep.engine.preemption import interruptions_deferred

class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, truncated, unsafe, or from another model."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with interruptions_deferred(), os.fdopen(fd, "wb") as f:  # a Ctrl-C now comes after the whole write
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # disk full, quota, size limit (torch reports these as RuntimeError)
        Path(tmp).unlink(missing_ok=True)
        if is_worker_death(err):  # a loader worker died while this was written: not the checkpoint's failure
            quiet_further_worker_deaths()
            raise
        # A worker's death can also surface inside torch's C++ writer, which reports only a broken position
        # ("unexpected pos"): ask torch whether a worker died, and if so raise that instead.
        try:
            torch._C._error_if_any_worker_fails()
        except RuntimeError:
            quiet_further_worker_deaths()
            raise
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        free_mb = shutil.disk_usage(path.parent).free / 2**20
        raise CheckpointError(
            f"could not write checkpoint {path} ({free_mb:.0f} MiB free on its disk): {reason}; "
            "the previous checkpoint is intact"
        ) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def load(path: Path) -> dict[str, Any]:
    """Load with weights_only=True: a checkpoint can hold tensors and plain containers, never code."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError for bad files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"cannot load checkpoint {path}: {reason}") from err


def resume_point(state: dict[str, Any]) -> tuple[int, int]:
    """(epoch to run, steps of it already done). An epoch-end checkpoint names its finished epoch; a mid-epoch
    one (written on preemption) names the epoch in progress and how many of its steps are done."""
    done = int(state.get("step_in_epoch") or 0)
    return int(state["epoch"]) + (0 if done else 1), done


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_as_tuple(state["python"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def load_model_weights(model: torch.nn.Module, state: dict[str, Any], source: Path) -> None:
    """Load weights with a one-line error when the checkpoint belongs to another architecture or class count."""
    weights = state.get("model", state)
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    mismatched = [k for k in own if k in weights and tuple(own[k].shape) != tuple(weights[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if mismatched:
        k = mismatched[0]
        problems.append(
            f"{len(mismatched)} shape mismatches (e.g. {k}: checkpoint {list(weights[k].shape)}, model {list(own[k].shape)})"
        )
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit this model: " + "; ".join(problems))
    model.load_state_dict(weights)
