"""sweep.json: what a sweep directory holds, written by the sweeper before its first job starts.

`status`, `sweep --resume` and `report` read it; it is plain JSON so that none of them imports Hydra or torch.
"""

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from spikesweep import REPO_ROOT

FILE = "sweep.json"

#: Overrides that say where and how a sweep runs, not what it trains: never part of its identity.
NOT_IDENTITY = ("hydra.sweep.", "hydra.sweeper.")


class SweepChanged(ValueError):
    """A resume whose axes or fixed overrides differ from the sweep's own."""


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False)
        except FileNotFoundError:  # no git on PATH (a bare compute node): the record says "unknown"
            return ""
        return out.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def split_arguments(arguments: list[str], params: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """(axes, fixed) of a sweep from its declared params and command-line arguments, as Hydra's basic
    sweeper reads them: a value with a top-level comma is an axis (a later one replaces an earlier one)."""
    axes: dict[str, list[str]] = {}
    fixed: list[str] = []
    for item in [f"{k}={v}" for k, v in params.items()] + list(arguments):
        key, _, value = item.partition("=")
        if key.startswith(NOT_IDENTITY):
            continue
        if _is_axis(value):
            fixed = [f for f in fixed if f.partition("=")[0] != key]
            axes[key] = [v.strip() for v in value.split(",")]
        else:
            axes.pop(key, None)
            fixed = [f for f in fixed if f.partition("=")[0] != key] + [item]
    return axes, fixed


def _is_axis(value: str) -> bool:
    depth = 0
    for ch in value:
        depth += ch in "[{("
        depth -= ch in "]})"
        if ch == "," and depth == 0:
            return True
    return False


def make(name: str, arguments: list[str], axes: dict[str, list[str]], fixed: list[str], launcher: str,
         jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "axes": axes,
        "fixed": fixed,
        "arguments": [a for a in arguments if not a.startswith(NOT_IDENTITY)],
        "launcher": launcher,
        "job_count": len(jobs),
        "git": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "jobs": jobs,
        "resumes": [],
    }


def read(sweep_dir: Path) -> dict[str, Any] | None:
    path = sweep_dir / FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, data: Any) -> None:
    """Whole or not at all: a reader (status, a resume, another worker) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def write(sweep_dir: Path, record: dict[str, Any]) -> None:
    write_json(sweep_dir / FILE, record)


def difference(old: dict[str, Any], axes: dict[str, list[str]], fixed: list[str]) -> str | None:
    """One line naming every axis and fixed override that differs from the recorded sweep, or None."""
    parts = []
    for key in sorted(set(old["axes"]) | set(axes)):
        before, after = old["axes"].get(key), axes.get(key)
        if before != after:
            parts.append(f"axis {key} {','.join(before) if before else '(none)'} -> {','.join(after) if after else '(none)'}")
    removed = [f for f in old["fixed"] if f not in fixed]
    added = [f for f in fixed if f not in old["fixed"]]
    if removed:
        parts.append(f"fixed override(s) dropped: {' '.join(removed)}")
    if added:
        parts.append(f"fixed override(s) added: {' '.join(added)}")
    return "; ".join(parts) or None


def check_unchanged(sweep_dir: Path, old: dict[str, Any], axes: dict[str, list[str]], fixed: list[str]) -> None:
    diff = difference(old, axes, fixed)
    if diff:
        raise SweepChanged(f"refusing to resume {sweep_dir}: the sweep changed ({diff}); "
                           f"start a new sweep for a different grid")


def note_resume(sweep_dir: Path, record: dict[str, Any], jobs: list[int]) -> None:
    record.setdefault("resumes", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "jobs": jobs,
                                             "git": git_commit()})
    write(sweep_dir, record)


def newest(root: Path, name: str) -> Path:
    """The latest sweep directory of a named multirun under root/multirun/NAME/."""
    runs = sorted((p for p in (root / "multirun" / name).glob("*") if p.is_dir()), key=lambda p: p.name)
    if not runs:
        raise FileNotFoundError(f"no multirun of '{name}' under {root / 'multirun' / name}: run `spikesweep sweep {name}`")
    return runs[-1]


def locate(name_or_dir: str, root: Path) -> Path:
    """A sweep directory given as a path, or as a sweep name (its newest directory)."""
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    if "/" not in name_or_dir and (root / "multirun" / name_or_dir).is_dir():
        return newest(root, name_or_dir)
    raise FileNotFoundError(f"no sweep directory or named multirun '{name_or_dir}' (looked for {path} and "
                            f"{root / 'multirun' / name_or_dir})")


#: Job number -> the SLURM array task that runs it ("<array>_<task>"), written at each submission.
TASKS = ".submitit/tasks.json"


def note_tasks(sweep_dir: Path, tasks: dict[int, str]) -> None:
    """Record which array task runs each job: with packing (K jobs per task), several arrays (MaxArraySize) or
    a resumed subset, task i is not job i. A later submission of a job replaces its entry."""
    known = read_tasks(sweep_dir) | tasks
    write_json(sweep_dir / TASKS, {str(num): task for num, task in sorted(known.items())})


def read_tasks(sweep_dir: Path) -> dict[int, str]:
    path = sweep_dir / TASKS
    return {int(num): task for num, task in json.loads(path.read_text()).items()} if path.is_file() else {}
