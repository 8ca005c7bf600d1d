"""What produced a run beyond its config: library versions (env.json), every installed package
(pip-freeze.txt) and, for datasets split by us rather than by their authors, a hash of the exact
train/test sample lists (summary.json `split_hash`), so two results can be checked for the same split."""

import hashlib
import importlib.metadata
import json
import logging
import platform
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The distributions whose versions env.json names (besides Python, CUDA and cuDNN).
LIBRARIES = ("torch", "torchvision", "spikingjelly", "timm", "hydra-core", "omegaconf", "numpy", "wandb", "submitit")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Versions that can change a result: Python, the libraries above, CUDA and cuDNN as torch sees them."""
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{name: _version(name) for name in LIBRARIES},
        "cuda": torch.version.cuda,  # the CUDA torch was built for (None: a CPU build)
        "cudnn": cudnn,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def pip_freeze() -> str:
    """`pip freeze` from importlib.metadata: the same name==version lines, without a pip subprocess (~1 s)."""
    # Only the installed environment's folders: once setuptools is imported (Inductor does), its vendored
    # packages join sys.path and would make the first job of a sweep differ from the others.
    installed = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    dists = importlib.metadata.distributions(path=installed)
    lines = {f"{d.metadata['Name']}=={d.version}" for d in dists if d.metadata["Name"]}
    return "".join(f"{line}\n" for line in sorted(lines, key=str.lower))


def write(run_dir: Path) -> dict[str, Any]:
    """env.json and pip-freeze.txt in run_dir. A resumed run that finds another environment says so and
    keeps the earlier one(s) under `earlier` in env.json."""
    env = environment() | {"executable": sys.executable}
    path = run_dir / "env.json"
    if path.exists():
        before = json.loads(path.read_text())
        earlier = before.pop("earlier", [])
        changed = [f"{k} {before.get(k)} -> {env.get(k)}" for k in env if k != "executable" and before.get(k) != env.get(k)]
        if changed:
            log.warning("this run directory was trained in another environment until now: %s", ", ".join(changed))
            env["earlier"] = [*earlier, before]
        elif earlier:
            env["earlier"] = earlier
    path.write_text(json.dumps(env, indent=2) + "\n")
    (run_dir / "pip-freeze.txt").write_text(pip_freeze())
    return env


def sample_list(dataset: Any) -> list[str] | None:
    """The dataset's samples as 'class-folder/file label' lines, in order, for datasets read from files
    (FrameFiles.items, ImageFolder.samples, through Subsets); None for in-memory ones (their split is
    fixed by the config: a seed and a fraction)."""
    indices = None
    while hasattr(dataset, "dataset") and hasattr(dataset, "indices"):  # torch Subset, possibly nested
        indices = [dataset.indices[i] for i in indices] if indices is not None else list(dataset.indices)
        dataset = dataset.dataset
    items = getattr(dataset, "items", None) or getattr(dataset, "samples", None)
    if not isinstance(items, list) or not items or not isinstance(items[0], tuple):
        return None
    if indices is not None:
        items = [items[i] for i in indices]
    return [f"{Path(str(path)).parent.name}/{Path(str(path)).stem} {label}" for path, label, *_ in items]


def split_hash(train: Any, test: Any) -> str | None:
    """sha256 (first 16 hex digits) of the train and test sample lists; None when they are not file lists.
    File names only, not their folders above the class: the same split hashes the same on any machine."""
    train_list, test_list = sample_list(train), sample_list(test)
    if train_list is None or test_list is None:
        return None
    digest = hashlib.sha256()
    for name, samples in (("train", train_list), ("test", test_list)):
        digest.update(f"[{name}]\n".encode())
        digest.update("".join(f"{s}\n" for s in samples).encode())
    return digest.hexdigest()[:16]
