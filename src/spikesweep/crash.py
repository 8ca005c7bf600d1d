"""How a run that crashes or is interrupted tells the user: one line on the terminal, the traceback in train.log.

A traceback on the terminal hides the one line that matters among framework frames; in train.log, beside the
run's other records, it is where a bug report starts.
"""

import logging
import sys
import traceback
from pathlib import Path


def log_traceback(err: BaseException, run_dir: Path) -> Path:
    """Write err's traceback to the run's log file only (not the console); returns that file."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    record = logging.getLogger("spikesweep").makeRecord(
        "spikesweep", logging.ERROR, __file__, 0, "unexpected error", (), (type(err), err, err.__traceback__)
    )
    for handler in files:
        handler.handle(record)
    if files:
        return Path(files[0].baseFilename)
    path = run_dir / "train.log"  # logging not set up by Hydra (a test calling hydra_main's body): write it
    with path.open("a") as f:
        traceback.print_exception(err, file=f)
    return path


def crash_line(err: BaseException, run_dir: Path) -> str:
    """`Type: message (traceback in <train.log>)`, the traceback written there first."""
    message = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {message} (traceback in {log_traceback(err, run_dir)})"


def interrupted(run_dir: Path) -> int:
    """Ctrl-C: say how to go on, and exit as a shell does for SIGINT."""
    print(f"interrupted; restart in {run_dir} to resume", file=sys.stderr)
    return 130
