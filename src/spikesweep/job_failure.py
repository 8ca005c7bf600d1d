"""What a job that failed leaves behind: a summary.json for `compare` and the sweep's counts, and its error
line in train.log. A directory that already holds a run, or that another process is using, is left as it
is: a refusal changes nothing."""

import json
import logging
import os
from pathlib import Path

from filelock import FileLock, Timeout

from spikesweep.engine.resume_policy import ResumeRefused

log = logging.getLogger("spikesweep")


def record_failed_job(run_dir: Path, error: BaseException) -> bool:
    """Write summary.json {status: failed, error} for a job that failed before writing its own (a config
    refused by validation, a crash during set-up). Returns whether it wrote one."""
    summary = run_dir / "summary.json"
    if isinstance(error, ResumeRefused) or summary.exists() or not run_dir.is_dir():
        return False
    lock = FileLock(run_dir / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:  # another process runs there; its summary is its own
        return False
    try:
        message = str(error) if isinstance(error, ValueError | RuntimeError) else f"{type(error).__name__}: {error}"
        tmp = run_dir / ".summary.json.tmp"
        tmp.write_text(json.dumps({"status": "failed", "error": message, "run_dir": str(run_dir)}, indent=2) + "\n")
        os.replace(tmp, summary)
    finally:
        lock.release()
    return True


def discard_if_new(run_dir: Path) -> bool:
    """Remove a single run's directory that a rejected config left empty: Hydra makes it (`.hydra/`,
    `train.log`) before the config is checked, and a refused command must not leave a stamped folder
    behind. A directory holding anything else (an earlier run's files) is kept as it is."""
    import shutil

    if not run_dir.is_dir() or {p.name for p in run_dir.iterdir()} - {".hydra", "train.log", ".lock"}:
        return False
    logging.shutdown()  # train.log's handler closes before its file goes
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in (run_dir.parent, run_dir.parent.parent):  # outputs/<name>/, outputs/ when this made them
        if parent.resolve() != Path.cwd().resolve() and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    return True


def log_to_file_only(message: str) -> None:
    """An error line for train.log (the job's file handlers) that the terminal already gets another way."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
