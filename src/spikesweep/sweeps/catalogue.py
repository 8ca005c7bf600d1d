"""The named-multirun catalogue: experiments/NAME.yaml, read without importing Hydra (keeps `list` fast)."""

from dataclasses import dataclass
from itertools import product
from typing import Any

import yaml

from spikesweep import REPO_ROOT

EXPERIMENTS_DIR = REPO_ROOT / "experiments"


@dataclass(frozen=True)
class NamedSweep:
    name: str
    description: str
    paper: str | None
    params: dict[str, str]
    reported: dict[str, float | None]
    tolerance: float = 0.5  # points; a cell is reproduced within max(this, 2 std over seeds) of its number

    @property
    def job_count(self) -> int:
        """Grid size of the declared axes (command-line sweeps can change it)."""
        count = 1
        for axis, values in self.params.items():
            count *= len(split_values(values, axis))
        return count


def split_values(values: Any, axis: str = "") -> list[str]:
    """Values of one sweep axis as Hydra reads a simple comma list ('a,b,c'); an empty value is an error."""
    parts = [v.strip() for v in str(values).split(",")]
    if not all(parts):
        raise ValueError(f"sweep axis '{axis}' has an empty value ({values!r}): give one or more values, a,b,c")
    return parts


def load(name: str) -> NamedSweep:
    path = EXPERIMENTS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"unknown named multirun '{name}'; valid: {', '.join(names())}")
    data = yaml.safe_load(path.read_text()) or {}
    meta = data.get("sweep", {})
    params = (data.get("hydra", {}).get("sweeper", {}) or {}).get("params", {}) or {}
    for axis, values in params.items():
        split_values(values, f"{name}: {axis}")  # an empty axis fails here, with its name
    reported = {str(k): v for k, v in (meta.get("reported") or {}).items() if not isinstance(v, dict)}
    return NamedSweep(
        name, meta.get("description", ""), meta.get("paper"), {k: str(v) for k, v in params.items()}, reported,
        float(meta.get("tolerance", 0.5)),
    )


def names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def grid(params: dict[str, str]) -> list[list[str]]:
    """Every job's overrides, in Hydra's basic-sweeper order (last axis varies fastest)."""
    axes = [[f"{k}={v}" for v in split_values(vals, k)] for k, vals in params.items()]
    return [list(job) for job in product(*axes)]
