"""Preemption: the scheduler's warning signal becomes a checkpoint at the next safe point.

submitit answers its preemption/timeout signal (SIGUSR2, or $SUBMITIT_PREEMPT_SIGNAL) inside the signal
handler: it calls the job's `checkpoint()` and requeues at once, wherever the main thread was interrupted,
so the steps since the last epoch checkpoint are lost. While training runs, `Preemption` holds that handler
back: its own handler only records the request (Python runs it in the main thread between bytecodes, so a
flag is all it may safely touch); the loop saves after the optimizer step in progress and returns; then
`deliver()` runs the held-back handler (submitit: checkpoint(), `scontrol requeue`, exit). Without submitit
the process exits with EX_TEMPFAIL (75), the code for "run me again", and rerunning the command resumes.
"""

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, NoReturn

log = logging.getLogger(__name__)

EX_TEMPFAIL = 75


def preemption_signal() -> signal.Signals:
    """The signal submitit listens to, by the same environment variable."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    try:
        return signal.Signals[f"SIG{name}"]
    except KeyError:
        raise ValueError(f"SUBMITIT_PREEMPT_SIGNAL={name} is not a signal name (e.g. USR2, USR1, TERM)") from None


class Preemption:
    """`with Preemption() as p:` train with `stop_requested=p.requested`, then `p.deliver()` if it stopped."""

    def __init__(self, signum: signal.Signals | None = None) -> None:
        self.signum = signum or preemption_signal()
        self._requested = False
        self._held_back: Any = signal.SIG_DFL
        self._installed = False

    def requested(self) -> bool:
        return self._requested

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        self._requested = True

    def __enter__(self) -> "Preemption":
        if threading.current_thread() is threading.main_thread():  # signal.signal works only there
            self._held_back = signal.signal(self.signum, self._handle)
            self._installed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if self._installed:
            signal.signal(self.signum, self._held_back)
            self._installed = False

    def deliver(self) -> NoReturn:
        """After the checkpoint is on disk: requeue through the held-back handler, else exit with 75."""
        if callable(self._held_back):
            log.info("handing %s to the job's own handler (requeue)", self.signum.name)
            self._held_back(self.signum, None)  # submitit's rank 0 requeues and exits; other ranks return
        raise SystemExit(EX_TEMPFAIL)


#: Open `interruptions_deferred` blocks, and whether a Ctrl-C came during one.
_DEFERRAL = {"depth": 0, "missed": False}


@contextmanager
def interruptions_deferred() -> Iterator[None]:
    """Ctrl-C (under `Interruption`) waits until the block ends, then raises. For writing a checkpoint: a
    KeyboardInterrupt raised inside torch.save's writer comes out as its C++ error "unexpected pos" (seen in CI:
    a Ctrl-C at an epoch's end was reported as a failed checkpoint); finished, the checkpoint is whole."""
    _DEFERRAL["depth"] += 1
    try:
        yield
    finally:
        _DEFERRAL["depth"] -= 1
    if _DEFERRAL["depth"] == 0 and _DEFERRAL["missed"]:
        _DEFERRAL["missed"] = False
        raise KeyboardInterrupt


class Interruption:
    """Ctrl-C raises KeyboardInterrupt wherever the main thread is, as Python's own handler does (except inside
    `interruptions_deferred`), and is also remembered: `pending()`, asked after every optimizer step, raises it
    again. A KeyboardInterrupt that something between the steps swallows (seen once in CI: a run went on to
    finish after its SIGINT) is then not lost, and the run still ends as interrupted."""

    def __init__(self) -> None:
        self._pending = False
        self._held_back: Any = signal.default_int_handler
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        self._pending = True
        if _DEFERRAL["depth"]:
            _DEFERRAL["missed"] = True
            return
        raise KeyboardInterrupt

    def pending(self) -> bool:
        if self._pending:
            raise KeyboardInterrupt
        return False

    def __enter__(self) -> "Interruption":
        if threading.current_thread() is threading.main_thread():
            self._held_back = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._held_back)
            self._installed = False
