"""Recent stamped samples (camera frames, joint states) and the choice of the model's history frames.

Times are integer nanoseconds (ROS stamps). The history of a prompt with M frames per camera is the frame at the
observation time t and the frames nearest t - period, t - 2 period, ... (oldest first). Frames that do not exist
yet (the start of a run) are left out, so the first prompts hold only the current frame, as the release does at t=0.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

NS = 1_000_000_000


@dataclass(frozen=True)
class Stamped[T]:
    """A value with its stamp (ns)."""

    stamp: int
    value: T


class StampedBuffer[T]:
    """The samples of the last ``span_ns`` nanoseconds (and at most ``max_items``), kept in stamp order."""

    def __init__(self, span_ns: int, max_items: int = 256) -> None:
        if span_ns < 0 or max_items < 1:
            raise ValueError("span_ns must be >= 0 and max_items >= 1")
        self.span_ns = int(span_ns)
        self._items: deque[Stamped[T]] = deque(maxlen=max_items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, stamp: int, value: T) -> None:
        """Insert a sample (out-of-order stamps are placed in order); samples older than the span are dropped."""
        item = Stamped(int(stamp), value)
        if not self._items or item.stamp >= self._items[-1].stamp:
            self._items.append(item)
        else:
            stamps = [s.stamp for s in self._items]
            self._items.insert(bisect.bisect_right(stamps, item.stamp), item)
        newest = self._items[-1].stamp
        while self._items and self._items[0].stamp < newest - self.span_ns:
            self._items.popleft()

    def latest(self) -> Stamped[T] | None:
        """The sample with the newest stamp."""
        return self._items[-1] if self._items else None

    def nearest(self, stamp: int) -> Stamped[T] | None:
        """The sample whose stamp is closest to ``stamp`` (the later one on a tie)."""
        if not self._items:
            return None
        stamps = [s.stamp for s in self._items]
        i = bisect.bisect_left(stamps, stamp)
        candidates = [self._items[j] for j in (i - 1, i) if 0 <= j < len(stamps)]
        return min(candidates, key=lambda s: (abs(s.stamp - stamp), -s.stamp))

    def clear(self) -> None:
        self._items.clear()


def select_history[T](
    front: StampedBuffer[T],
    wrist: StampedBuffer[T] | None,
    current: Stamped[T],
    history: int,
    period_ns: int,
    tolerance_ns: int,
    sync_ns: int,
) -> tuple[list[Stamped[T]], list[Stamped[T]] | None]:
    """Front (and wrist) frames for a prompt, oldest first, ending with ``current`` (the front frame at t).

    Step j >= 1 takes the front frame nearest t - j * period if it is within ``tolerance_ns`` of that time and
    older than the frame of step j - 1; each front frame is paired with the wrist frame nearest to it within
    ``sync_ns``. The history stops at the first step that has no such frames. The current step always has its
    front frame; its wrist frame may be missing (returned list then empty) - the caller rejects that observation.
    """
    fronts = [current]
    wrists: list[Stamped[T]] = []
    if wrist is not None:
        w = wrist.nearest(current.stamp)
        if w is None or abs(w.stamp - current.stamp) > sync_ns:
            return fronts, []
        wrists.append(w)
    for j in range(1, history):
        target = current.stamp - j * period_ns
        f = front.nearest(target)
        if f is None or abs(f.stamp - target) > tolerance_ns or f.stamp >= fronts[-1].stamp:
            break
        if wrist is not None:
            w = wrist.nearest(f.stamp)
            if w is None or abs(w.stamp - f.stamp) > sync_ns or w.stamp >= wrists[-1].stamp:
                break
            wrists.append(w)
        fronts.append(f)
    fronts.reverse()
    wrists.reverse()
    return fronts, (wrists if wrist is not None else None)
