"""Progress lines with rate and ETA, and graceful stops on SIGTERM/SIGINT."""

import signal
import threading
import time


def format_duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


class Rate:
    """Items per second over the work done in this process, and the ETA."""

    def __init__(self, done: int, total: int):
        self.start_done, self.total = done, total
        self.start_time = time.monotonic()

    def resumed(self, count: int) -> None:
        """Counts `count` items found already done (they take no time)."""
        self.start_done += count

    def update(self, done: int) -> tuple[float, float]:
        """(items per second, seconds left) after `done` items in total."""
        elapsed = max(time.monotonic() - self.start_time, 1e-9)
        rate = (done - self.start_done) / elapsed
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        return rate, eta


class GracefulStop:
    """Turns SIGTERM/SIGINT into a flag checked between compiled train calls.

    The first signal asks the loop to checkpoint and stop; a second SIGINT
    (Ctrl-C twice) interrupts at once. Handlers are installed only in the main
    thread and restored on exit.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested: str | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class Heartbeat:
    """While a long call runs, prints `status()` every `every` seconds (from a
    thread), so that a command never goes quiet for long:

        with Heartbeat(report, lambda: "3/9 colorized | working on 4-6"):
            run_batch()
    """

    def __init__(self, report, status, every: float = 2.0):
        self.report, self.status, self.every = report, status, every
        self._stop = threading.Event()
        self._thread = None

    def _beat(self):
        start = time.monotonic()
        while not self._stop.wait(self.every):
            self.report(f"{self.status()} | {format_duration(time.monotonic() - start)} "
                        "on this batch")

    def __enter__(self):
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False
