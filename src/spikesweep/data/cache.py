"""A cache of preprocessed samples that concurrent runs of a sweep can share without racing.

Layout: <cache_root>/<readable name>-<hash of every option that changes the result>/ holding the samples
and prepare.json (the options and the throughput of the build). A cache directory exists only once it is
complete: it is built in <name>.tmp-<pid>/ while <name>.lock is held, then renamed into place (atomic on
one filesystem). A second process waits on the lock and then finds the finished directory; a build that
crashed leaves only a .tmp-* folder, removed by the next builder.
"""

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock

log = logging.getLogger("spikesweep.data")
T = TypeVar("T")


def cache_key(options: Mapping[str, Any]) -> str:
    """A short stable hash of the options: same options, same folder; any change, another folder."""
    return hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]


def cached(root: Path, name: str, options: Mapping[str, Any], build: Callable[[Path], dict[str, Any]]) -> Path:
    """Return root/<name>-<key>, building it once with build(tmp_dir) -> stats if it does not exist yet."""
    final = root / f"{name}-{cache_key(options)}"
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.is_dir():  # another process finished it while we waited
            return final
        for stale in root.glob(f"{final.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f"{final.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            started = time.perf_counter()
            stats = build(tmp)
            stats["seconds"] = round(time.perf_counter() - started, 3)
            for count in ("samples", "events"):
                if count in stats:
                    stats[f"{count}_per_s"] = round(stats[count] / max(stats["seconds"], 1e-9), 1)
            (tmp / "prepare.json").write_text(json.dumps({"options": dict(options), **stats}, indent=2) + "\n")
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("%s", prepared_sentence(final, json.loads((final / "prepare.json").read_text())))
    return final


def prepared_sentence(folder: Path, stats: dict) -> str:
    """prepare.json as a sentence: what was built, how fast, and where it lies."""
    counts = [f"{stats[k]:,} {k}" for k in ("samples", "events") if k in stats]
    rate = f", {stats['samples_per_s']:,} samples/s" if "samples_per_s" in stats else ""
    took = f" in {stats['seconds']} s{rate}" if "seconds" in stats else ""
    return f"prepared {' and '.join(counts) or 'the data'}{took}; cached in {folder}"


def progress(items: Iterable[T], total: int, description: str) -> Iterable[T]:
    """A progress bar on a terminal, nothing when output goes to a log file."""
    if not sys.stderr.isatty():
        return items
    from rich.progress import track

    return track(items, total=total, description=description, transient=True)
