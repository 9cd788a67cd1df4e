"""SIGTERM (CI cancellation, `timeout`) and SIGHUP (a closed terminal) stop a run the way Ctrl-C does: the
executor terminates every child's process group, and the exit code names the signal (143, 129). A module of its
own, so that the no-op fast path can install the handlers without importing the process machinery."""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: handled like Ctrl-C (children stopped), but the exit code says which signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def stop_on_signals() -> None:
    """Make SIGTERM (CI cancellation, `timeout`) and SIGHUP (a closed terminal) stop the run like Ctrl-C does."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:  # `nohup polybuild ...` keeps running when the terminal closes
            signal.signal(sig, handler)
