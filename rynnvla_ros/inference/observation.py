"""Assembling observations for the policy from the latest camera frames and joint states, with staleness gates.

An observation is taken at the stamp t of a front camera frame. It is refused (:class:`Rejected`, with a reason
key and a message) when the frame is older than ``max_age`` (or that far in the future: clocks out of sync), when
the wrist frame or the joint state nearest t is more than ``max_age`` away from t, or when there is no task.

Streams arrive independently, so the wrist frame or joint state of time t may come after the front frame of t.
A front frame that lacks them is therefore kept pending (:meth:`ObservationAssembler.offer`) and completed when
they arrive (:meth:`ObservationAssembler.retry`); it is refused when a newer front frame replaces it or when it
grows older than ``max_age``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rynnvla_ros.inference.history import NS, Stamped, StampedBuffer, select_history
from rynnvla_ros.inference.robot_io import RobotIO, RobotIOError

JOINT_SPAN_NS = 2 * NS


class Rejected(Exception):
    """An observation (or an input) that is not used; ``key`` names the reason for counting."""

    def __init__(self, key: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.retryable = retryable
        """True when a later wrist frame or joint state may still complete the observation."""


@dataclass(frozen=True)
class Observation:
    """Everything one inference call needs, gathered at the front frame time ``stamp`` (ns)."""

    stamp: int
    task: str
    q: np.ndarray
    """Joint positions (rad, model order) nearest ``stamp``."""
    state: np.ndarray | None
    """The model's state vector (None when the prompt has no state)."""
    front: list[np.ndarray]
    """uint8 RGB frames, oldest first, the last one at ``stamp``."""
    wrist: list[np.ndarray] | None
    frame_stamps: list[int]
    created: float = field(default_factory=time.monotonic)


class Rejections:
    """Counts refused inputs per reason and rate-limits their log lines (one per reason every ``log_period`` s)."""

    def __init__(self, log_period: float = 2.0) -> None:
        self.log_period = log_period
        self.counts: dict[str, int] = {}
        self.last_message: dict[str, str] = {}
        self.latest = ""
        """The message of the most recent rejection."""
        self._last_log: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, key: str, message: str, now: float | None = None) -> bool:
        """Count one rejection; True when it should be logged now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            self.last_message[key] = message
            self.latest = message
            last = self._last_log.get(key)
            if last is None or now - last >= self.log_period:
                self._last_log[key] = now
                return True
            return False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class ObservationAssembler:
    """Latest frames and joint states of one robot; builds gated :class:`Observation` objects (thread-safe)."""

    def __init__(self, io: RobotIO, max_age: float, history_tolerance: float | None = None) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be > 0 s, got {max_age}")
        self.io = io
        self.max_age_ns = int(max_age * NS)
        self.period_ns = round(io.control_period * NS)
        tol = io.control_period / 2 if history_tolerance is None else history_tolerance
        self.tolerance_ns = int(tol * NS)
        span = (io.history - 1) * self.period_ns + self.tolerance_ns + self.max_age_ns
        self.front = StampedBuffer[np.ndarray](span)
        self.wrist = StampedBuffer[np.ndarray](span) if io.use_wrist else None
        self.joints = StampedBuffer[np.ndarray](JOINT_SPAN_NS)
        self._pending: tuple[Stamped[np.ndarray], Rejected] | None = None
        self._lock = threading.RLock()

    def add_joint_state(self, stamp: int, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """Store a joint state (any order, extra joints ignored); Rejected (missing_joint, non_finite_joint,
        bad_joint_state) when unusable."""
        try:
            q = self.io.joint_vector(names, positions)
        except RobotIOError as exc:
            raise Rejected(exc.kind, f"joint_states rejected: {exc}") from None
        with self._lock:
            self.joints.add(stamp, q)
        return q

    def add_frame(self, camera: str, stamp: int, frame: np.ndarray) -> Stamped[np.ndarray]:
        """Store a uint8 RGB frame of ``camera`` ("front" or "wrist")."""
        buf = self.front if camera == "front" else self.wrist
        if buf is None:
            raise ValueError(f"this robot I/O has no {camera} camera")
        with self._lock:
            buf.add(stamp, frame)
        return Stamped(int(stamp), frame)

    def assemble(self, current: Stamped[np.ndarray], task: str, now: int) -> Observation:
        """The observation at front frame ``current`` given the time ``now`` (ns); Rejected when it is unusable."""
        if not task:
            raise Rejected("no_task", "no task: publish one on the task topic or set the task parameter")
        t = current.stamp
        age = now - t
        if age > self.max_age_ns:
            raise Rejected("stale_image", f"front image is {age / NS:.3f} s old (max_age {self.max_age_ns / NS:g} s)")
        if -age > self.max_age_ns:
            raise Rejected("future_image", f"front image is stamped {-age / NS:.3f} s in the future (clock skew?)")
        with self._lock:
            joint = self.joints.nearest(t)
            fronts, wrists = select_history(
                self.front, self.wrist, current, self.io.history, self.period_ns, self.tolerance_ns, self.max_age_ns
            )
        if wrists is not None and not wrists:
            msg = f"no wrist image within max_age {self.max_age_ns / NS:g} s of the front one"
            raise Rejected("stale_wrist", msg, retryable=True)
        if joint is None:
            raise Rejected("no_joint_state", "no valid joint state received", retryable=True)
        if abs(joint.stamp - t) > self.max_age_ns:
            raise Rejected(
                "stale_joint_state",
                f"nearest joint state is {(t - joint.stamp) / NS:+.3f} s from the image "
                f"(max_age {self.max_age_ns / NS:g} s)",
                retryable=joint.stamp < t,
            )
        q = joint.value
        return Observation(
            stamp=t,
            task=task,
            q=q,
            state=self.io.to_model_state(q) if self.io.state else None,
            front=[f.value for f in fronts],
            wrist=None if wrists is None else [w.value for w in wrists],
            frame_stamps=[f.stamp for f in fronts],
        )

    # ---------------------------------------------------------------- pending front frames
    def offer(self, current: Stamped[np.ndarray], task: str, now: int) -> tuple[Observation | None, list[Rejected]]:
        """Try the observation at a new front frame; keep it pending if a wrist frame or joint state may still come.

        Returns the observation (or None) and the rejections this caused: the frame itself, or the pending frame
        it replaced.
        """
        with self._lock:
            rejected = [] if self._pending is None else [self._pending[1]]
            self._pending = None
            try:
                return self.assemble(current, task, now), rejected
            except Rejected as r:
                if r.retryable:
                    self._pending = (current, r)
                    return None, rejected
                return None, [*rejected, r]

    def retry(self, task: str, now: int) -> tuple[Observation | None, list[Rejected]]:
        """Complete the pending front frame after a new wrist frame or joint state, if it can be now."""
        with self._lock:
            if self._pending is None:
                return None, []
            current, previous = self._pending
            try:
                obs = self.assemble(current, task, now)
            except Rejected as r:
                if r.retryable:
                    self._pending = (current, r)
                    return None, []
                self._pending = None
                # a frame that aged out while waiting is refused for what it was waiting for
                return None, [previous if r.key == "stale_image" else r]
            self._pending = None
            return obs, []

    @property
    def pending(self) -> bool:
        """Whether a front frame waits for its wrist frame or joint state."""
        return self._pending is not None
