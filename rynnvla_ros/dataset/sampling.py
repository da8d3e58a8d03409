"""Causal ("as-of") sampling of message streams at frame times.

For every frame time ``t`` a stream contributes its latest message with time ``<= t``; a later message is never
used, so no information from the future leaks into a frame. A sample older than ``max_age`` counts as stale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NS = 1_000_000_000


@dataclass(frozen=True)
class Stream:
    """Times (ns, any order) of the usable messages of one topic and their indices in the bag's order."""

    times: np.ndarray
    indices: np.ndarray

    @classmethod
    def of(cls, times: list[int] | np.ndarray, indices: list[int] | np.ndarray | None = None) -> Stream:
        """A stream from message times; ``indices`` default to 0..n-1."""
        t = np.asarray(times, dtype=np.int64)
        idx = np.arange(t.size, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        if idx.shape != t.shape:
            raise ValueError(f"times and indices differ in length ({t.size} vs {idx.size})")
        order = np.argsort(t, kind="stable")  # equal times keep bag order, so the later arrival wins
        return cls(times=t[order], indices=idx[order])

    def __len__(self) -> int:
        return int(self.times.size)


@dataclass(frozen=True)
class Samples:
    """Result of sampling one stream at N frame times."""

    index: np.ndarray
    """Message index (the stream's ``indices``) per frame; -1 where there is none."""
    age_ns: np.ndarray
    """Frame time minus message time; -1 where there is no message."""
    missing: np.ndarray
    """No message at or before the frame time."""
    stale: np.ndarray
    """The latest message is older than ``max_age``."""

    @property
    def ok(self) -> np.ndarray:
        """Frames with a fresh sample."""
        return ~(self.missing | self.stale)


def sample_asof(stream: Stream, frame_times: np.ndarray, max_age_s: float) -> Samples:
    """Latest message at or before each frame time, and whether it is missing or older than ``max_age_s``."""
    frames = np.asarray(frame_times, dtype=np.int64)
    if len(stream) == 0:
        none = np.full(frames.shape, -1, np.int64)
        return Samples(index=none, age_ns=none, missing=np.ones(frames.shape, bool), stale=np.zeros(frames.shape, bool))
    pos = np.searchsorted(stream.times, frames, side="right") - 1
    missing = pos < 0
    safe = np.where(missing, 0, pos)
    age = np.where(missing, -1, frames - stream.times[safe])
    stale = ~missing & (age > round(max_age_s * NS))
    index = np.where(missing, -1, stream.indices[safe])
    return Samples(index=index, age_ns=age, missing=missing, stale=stale)


def reference_gaps(times: np.ndarray, fps: float, factor: float = 1.5) -> list[tuple[int, int]]:
    """(time ns, gap ns) of intervals between consecutive frames longer than ``factor`` frame periods."""
    t = np.sort(np.asarray(times, dtype=np.int64))
    if t.size < 2:
        return []
    d = np.diff(t)
    limit = factor * NS / fps
    return [(int(t[i]), int(d[i])) for i in np.flatnonzero(d > limit)]


def subsample(times: np.ndarray, fps: float) -> np.ndarray:
    """Mask of the frames kept at ``fps``: for each tick of a 1/fps grid from the first frame, the frame nearest to
    it (each frame at most once). When the frames come at most 10 % faster than ``fps`` all are kept."""
    t = np.asarray(times, dtype=np.int64)
    if t.size < 2 or estimate_fps(t) <= 1.1 * fps:
        return np.ones(t.shape, bool)
    ticks = np.arange(int(t[0]), int(t[-1]) + 1, round(NS / fps), dtype=np.int64)
    after = np.clip(np.searchsorted(t, ticks), 1, t.size - 1)
    nearest = np.where(ticks - t[after - 1] <= t[after] - ticks, after - 1, after)
    keep = np.zeros(t.shape, bool)
    keep[nearest] = True
    return keep


def estimate_fps(times: np.ndarray) -> float:
    """Frame rate from the median interval of ``times`` (ns); a ValueError below two distinct times."""
    t = np.unique(np.asarray(times, dtype=np.int64))
    if t.size < 2:
        raise ValueError("need at least two reference frames to estimate the frame rate")
    return NS / float(np.median(np.diff(t)))
