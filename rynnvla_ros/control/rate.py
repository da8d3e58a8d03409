"""Measured event rate over a sliding window (for diagnostics)."""

from __future__ import annotations

from collections import deque


class RateMeter:
    """Counts events in the last ``window`` seconds."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        """Record one event at ``now`` (seconds, any monotonic clock)."""
        self._times.append(now)
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        """Events per second over the window ending at ``now``; 0 with fewer than two events."""
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)
