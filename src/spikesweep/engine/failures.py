"""The failures a training loop turns into one actionable line."""

import signal
import sys
from contextlib import contextmanager
from typing import Any


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


class DataWorkerError(Exception):
    """A DataLoader worker process died (OOM killer, a signal, a crash in native decoding code)."""


def is_worker_death(err: BaseException) -> bool:
    """torch's SIGCHLD handler raises this RuntimeError in whatever the main thread runs at that moment."""
    return isinstance(err, RuntimeError) and "DataLoader worker" in str(err)


def quiet_further_worker_deaths() -> None:
    """The run is ending: without this, torch's SIGCHLD handler raises again (as "Exception ignored" noise)
    for each further dead worker while the loaders shut down."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _unraisable_without_worker_deaths(default: Any) -> Any:
    """Python prints an exception raised where it cannot propagate (a finalizer, logging's at-fork lock
    release) as "Exception ignored ... Traceback": seen in CI when torch's SIGCHLD handler fired there. Such
    a worker death is not lost: the loader raises it again when it next waits for that worker."""

    def hook(unraisable: Any) -> None:
        if not is_worker_death(unraisable.exc_value):
            default(unraisable)

    return hook


def _from_handle_server(tb: Any) -> bool:
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith("multiprocessing/resource_sharer.py"):
            return True
        tb = tb.tb_next
    return False


def _excepthook_without_handle_server(default: Any) -> Any:
    """A worker killed while it fetches a batch's shared-memory handle breaks the connection of
    multiprocessing's handle server, a thread of this process that prints the error through sys.excepthook
    (seen in CI as a stray traceback after the one-line report). The death itself reaches the loader."""

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if not _from_handle_server(tb):
            default(kind, value, tb)

    return hook


@contextmanager
def worker_deaths_reported(where: str):
    """Turn torch's 'DataLoader worker ... exited unexpectedly' into one actionable line.

    torch raises it from its SIGCHLD handler, so anywhere in the main thread (mid-step as well as in
    `next(loader)`): the whole phase is wrapped. The usual cause on a shared node is the kernel's OOM
    killer, so the message says what to lower.
    """
    default, default_excepthook = sys.unraisablehook, sys.excepthook
    sys.unraisablehook = _unraisable_without_worker_deaths(default)
    sys.excepthook = _excepthook_without_handle_server(default_excepthook)
    died = False
    try:
        yield
    except RuntimeError as err:
        if not is_worker_death(err):
            raise
        died = True
        quiet_further_worker_deaths()
        raise DataWorkerError(
            f"a data loader worker died during {where} ({str(err).splitlines()[0]}); if it ran out of memory, "
            "lower trainer.num_workers or trainer.batch_size"
        ) from err
    finally:
        sys.unraisablehook = default
        if not died:  # after a death the handle server may still report it while the run shuts down
            sys.excepthook = default_excepthook
