"""The per-user cache: what holds for a machine rather than for a clone (backend verdicts, compiled loops).

`$SPIKESWEEP_USER_CACHE`, else `$XDG_CACHE_HOME/spikesweep`, else `~/.cache/spikesweep`: every clone and every
job of a sweep on the machine shares it. Files are written whole (a temporary file renamed over the target),
so concurrent jobs never read half a file; two jobs writing one key both write a valid file and one wins.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

ENV = "SPIKESWEEP_USER_CACHE"


def user_cache_dir() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "spikesweep"


def read_json(path: Path) -> dict[str, Any] | None:
    """The record, or None if it is absent or unreadable (a foreign or damaged file counts as absent)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> bool:
    """Atomically replace `path` with `data`; False (nothing written) where the cache is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True
