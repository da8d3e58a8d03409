"""Rolling summaries of measured durations (latency, inference time) for diagnostics and benchmarks."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class RollingStats:
    """The last ``window`` values of a measurement (seconds) and their summary."""

    def __init__(self, window: int = 200) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self.count = 0
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))
            self.count += 1

    def summary(self) -> dict[str, float]:
        """``last``, ``mean``, ``median``, ``p90`` and ``max`` over the window (empty dict before any value)."""
        with self._lock:
            if not self._values:
                return {}
            values = list(self._values)
        full = summarize(values)
        return {"last": values[-1]} | {k: full[k] for k in ("mean", "median", "p90", "max")}


def summarize(values: list[float] | np.ndarray) -> dict[str, float]:
    """Count, mean, min, median, p90, p99 and max of ``values``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"n": 0}
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "min": float(arr.min()),
        "median": float(np.median(arr)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }
