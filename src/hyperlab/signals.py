"""Ctrl-C (SIGINT) and SIGTERM during a run: the run stops in every phase (setup, fit, test, figures, writing
results) and is recorded `interrupted`. While training (`StopRequest.defer`), it stops before its next step (a stop
in the middle of a step can leave a lock or a file half-done); in the other phases, at once. A second signal stops
at once."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from hyperlab.errors import Interrupted
from hyperlab.tasks.stopping import StopRequest


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """Handle SIGINT and SIGTERM by setting `stop` (and raising Interrupted, but while training), as above."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may handle signals
        yield
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.defer and stop.signal is None:
            stop.signal = name
            return
        stop.signal = name
        raise Interrupted(f"stopped by {name}")

    previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_reason(stopped: BaseException, stop: StopRequest) -> str:
    """Why an interrupted run stopped, as its record says."""
    return str(stopped) if isinstance(stopped, Interrupted) else f"stopped by {stop.signal or 'a signal'}"
