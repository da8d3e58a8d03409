"""A latest-only worker: one thread that processes the newest submitted item, never a queue.

``submit`` puts an item in a single slot; an item still waiting there is replaced and counted as dropped. While
the handler runs, new items keep replacing each other, so a slow model always starts on the newest observation
and memory never grows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class LatestOnlyWorker[T]:
    """Runs ``handler(item)`` on its own thread for the newest item; ``on_error(item, exc)`` gets its exceptions."""

    def __init__(
        self,
        handler: Callable[[T], None],
        on_error: Callable[[T, Exception], None] | None = None,
        name: str = "latest-only-worker",
    ) -> None:
        self._handler = handler
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: T | None = None
        self._has_pending = False
        self._busy = False
        self._closed = False
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self.failed = 0
        self.wait_s = 0.0
        """Time the last processed item spent in the slot before the handler started."""
        self._submit_time = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """Whether the handler is running."""
        return self._busy

    def submit(self, item: T) -> bool:
        """Offer ``item``; returns True when it replaced an item that had not started (that one is dropped)."""
        with self._cond:
            if self._closed:
                return False
            replaced = self._has_pending
            if replaced:
                self.dropped += 1
            self._pending, self._has_pending = item, True
            self._submit_time = time.perf_counter()
            self.submitted += 1
            self._cond.notify()
            return replaced

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
                self.wait_s = time.perf_counter() - self._submit_time
                self._busy = True
            try:
                self._handler(item)  # type: ignore[arg-type]
            except Exception as exc:
                self.failed += 1
                if self._on_error is not None:
                    self._on_error(item, exc)  # type: ignore[arg-type]
            finally:
                with self._cond:
                    self._busy = False
                    self.processed += 1
                    self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending or running (for tests and shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._has_pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Drop any pending item, let a running handler finish (up to ``timeout`` s) and stop the thread."""
        with self._cond:
            self._closed = True
            self._pending, self._has_pending = None, False
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
