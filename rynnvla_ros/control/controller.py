"""The SO100 controller without ROS: measured states in, chunks in, one safe joint command per control tick out.

Rules (all on by default):

* no command before the first measured joint state, nor while the measured state is older than ``state_timeout``
  (after such a gap it starts again from the measured state, with a new ramp-in);
* the first commands move away from the measured state under a ramp-in velocity limit, then every command obeys the
  URDF position limits (targets are clipped), a per-step motion limit and a velocity limit (:mod:`.safety`);
* chunks are validated (:mod:`.chunk_schedule`); rejected ones leave the plan untouched and are counted;
* when no chunk has been accepted for ``command_timeout`` seconds the plan is cut and the last command held;
* e-stop latches: the arm holds the position measured at the e-stop, chunks are refused, until :meth:`reset`.

Times are seconds on the clock of the chunks' stamps (ROS time). Methods are thread-safe.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rynnvla_ros.control.chunk_schedule import (
    ChunkLimits,
    ChunkRejected,
    ChunkSchedule,
    Trajectory,
    trajectory_from_chunk,
    trajectory_from_points,
)
from rynnvla_ros.control.safety import SafetyConfig, SafetyFilter
from rynnvla_ros.control.so100_description import JointLimits

HISTORY_SECONDS = 10.0  # measured states kept to resolve joint deltas against the state at a chunk's stamp


class State(enum.Enum):
    """What the controller is doing."""

    WAITING = "waiting for the first joint state"
    STATE_LOST = "joint state lost"
    HOLDING = "holding position"
    EXECUTING = "executing"
    ESTOP = "e-stop latched"


@dataclass(frozen=True)
class ControllerConfig:
    """Node parameters of the same names (see rynnvla_ros/nodes/so100_controller.py)."""

    blend: str = "crossfade"
    crossfade_time: float = 0.2
    blend_weight: float = 0.7
    command_timeout: float = 1.0
    state_timeout: float = 0.5
    chunk_limits: ChunkLimits = field(default_factory=ChunkLimits)
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self) -> None:
        if self.command_timeout <= 0 or self.state_timeout <= 0:
            raise ValueError("command_timeout and state_timeout must be > 0 s")


@dataclass(frozen=True)
class Verdict:
    """Outcome of a submitted chunk: executed or not, and a message for the log (reason, clipping, skipped steps)."""

    accepted: bool
    message: str


@dataclass
class Counters:
    """Totals since start, for diagnostics."""

    accepted: int = 0
    rejected: int = 0
    dry_run: int = 0
    clipped: int = 0
    skipped_steps: int = 0
    timeouts: int = 0
    last_rejection: str = ""


class ArmController:
    """Plan, safety filter and e-stop of one arm (see the module docstring)."""

    def __init__(self, config: ControllerConfig, limits: JointLimits) -> None:
        self.config = config
        self.schedule = ChunkSchedule(config.blend, config.crossfade_time, config.blend_weight)
        self.safety = SafetyFilter(config.safety, limits)
        self.counters = Counters()
        self.state = State.WAITING
        self.estopped = False
        self._estop_position: np.ndarray | None = None
        self._history: deque[tuple[float, np.ndarray]] = deque()
        self._last_accept = -np.inf
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------ measured state
    def on_state(self, now: float, positions: np.ndarray) -> None:
        """Record a measured joint state (radians) taken at ``now``."""
        q = np.asarray(positions, dtype=float).copy()
        with self._lock:
            self._history.append((now, q))
            while self._history and self._history[0][0] < now - HISTORY_SECONDS:
                self._history.popleft()
            if self.state in (State.WAITING, State.STATE_LOST):
                self._restart(now, q)

    @property
    def measured(self) -> np.ndarray | None:
        """The latest measured positions, None before the first."""
        with self._lock:
            return self._history[-1][1].copy() if self._history else None

    def reference(self, t: float) -> np.ndarray | None:
        """Measured positions at time ``t`` (interpolated), None when ``t`` is outside the recorded history."""
        with self._lock:
            if not self._history:
                return None
            times = np.array([h[0] for h in self._history])
            if t < times[0] or t > times[-1] + self.config.state_timeout:
                return None
            q = np.stack([h[1] for h in self._history])
            return np.array([np.interp(t, times, q[:, j]) for j in range(q.shape[1])])

    def _restart(self, now: float, q: np.ndarray) -> None:
        """Start from ``q``: held there while the e-stop is latched, else a fresh plan with a ramp-in."""
        if self.estopped:  # hold where the arm is now, not where it was before
            self._estop_position = q
            self.safety.hold(q, now)
            self.state = State.ESTOP
        else:
            self._activate(now, q)

    def _activate(self, now: float, q: np.ndarray) -> None:
        self.safety.start(now, q)
        self.schedule.clear()
        self.state = State.HOLDING

    # ------------------------------------------------------------------------------------------ commands in
    def submit_chunk(
        self,
        now: float,
        *,
        names: Sequence[str],
        action_space: str,
        stamp: float,
        dt: float,
        start_step: int,
        horizon: int,
        dim: int,
        data: Sequence[float],
        dry_run: bool = False,
    ) -> Verdict:
        """Validate and schedule the fields of an ``ActionChunk`` (a zero ``stamp`` means ``now``)."""
        if dry_run:
            with self._lock:
                self.counters.dry_run += 1
            return Verdict(False, "dry-run chunk: not executed")
        stamp = stamp or now
        return self._submit(
            now,
            lambda: trajectory_from_chunk(
                names=names,
                action_space=action_space,
                stamp=stamp,
                dt=dt,
                start_step=start_step,
                horizon=horizon,
                dim=dim,
                data=data,
                reference=self.reference,
                limits=self.config.chunk_limits,
            ),
        )

    def submit_trajectory(
        self,
        now: float,
        *,
        names: Sequence[str],
        stamp: float,
        times_from_start: Sequence[float],
        positions: Sequence[Sequence[float]],
    ) -> Verdict:
        """Validate and schedule a ``JointTrajectory`` (positions of each point; a zero ``stamp`` means ``now``)."""
        stamp = stamp or now
        return self._submit(
            now,
            lambda: trajectory_from_points(
                names=names,
                stamp=stamp,
                times_from_start=times_from_start,
                positions=positions,
                limits=self.config.chunk_limits,
            ),
        )

    def _submit(self, now: float, build) -> Verdict:
        with self._lock:
            try:
                if self.estopped:
                    raise ChunkRejected("e-stop is latched (call ~/reset)")
                if self.state in (State.WAITING, State.STATE_LOST):
                    raise ChunkRejected(f"{self.state.value}: cannot execute yet")
                traj: Trajectory = build()
                ahead = float(traj.times[0]) - now
                if ahead > self.config.chunk_limits.max_future:
                    raise ChunkRejected(f"chunk starts {ahead:.2f} s in the future (clocks out of sync?)")
                positions, clipped = self.safety.clip(traj.positions)
                kept = self.schedule.add(Trajectory(traj.times, positions), now, self.safety.last)
            except ChunkRejected as exc:
                self.counters.rejected += 1
                self.counters.last_rejection = str(exc)
                return Verdict(False, str(exc))
            self._last_accept = now
            self.counters.accepted += 1
            self.counters.skipped_steps += traj.times.size - kept
            self.counters.clipped += int(clipped)
            notes = [f"{kept} of {traj.times.size} steps scheduled"]
            if clipped:
                notes.append("targets clipped to the joint limits")
            return Verdict(True, "; ".join(notes))

    # ------------------------------------------------------------------------------------------ command out
    def check_state(self, now: float) -> bool:
        """Whether a fresh measured state is available at ``now``; marks the state lost (plan dropped) if not."""
        with self._lock:
            if self.state is State.WAITING:
                return False
            if now - self._history[-1][0] > self.config.state_timeout:
                self.state = State.STATE_LOST
                self.schedule.clear()
                return False
            return True

    def step(self, now: float) -> np.ndarray | None:
        """The joint command for ``now`` (radians), or None when nothing may be sent."""
        with self._lock:
            if not self.check_state(now):
                return None
            if self.estopped:
                self.state = State.ESTOP
                return self.safety.hold(self._estop_position, now)
            if not self.schedule.empty:
                silent = now - self._last_accept > self.config.command_timeout
                if silent and self.schedule.end_time > now:
                    self.schedule.hold(now, self.safety.last)
                    self.counters.timeouts += 1
            target = self.schedule.sample(now)
            if target is None:
                target = self.safety.last
            self.state = State.EXECUTING if self.schedule.end_time > now else State.HOLDING
            return self.safety.limit(target, now)

    # ------------------------------------------------------------------------------------------ e-stop
    def estop(self, now: float) -> str:
        """Latch the e-stop: hold the measured position until :meth:`reset`."""
        with self._lock:
            if self.estopped:
                return "e-stop was already latched"
            self.estopped = True
            self.schedule.clear()
            if self.state not in (State.WAITING, State.STATE_LOST):
                self._estop_position = self.measured
                self.safety.hold(self._estop_position, now)
                self.state = State.ESTOP
            return "e-stop latched: holding position until ~/reset"

    def reset(self, now: float) -> tuple[bool, str]:
        """Release the e-stop; motion starts again from the measured state with a ramp-in."""
        with self._lock:
            if not self.estopped:
                return False, "e-stop is not latched"
            self.estopped = False
            q = self.measured
            fresh = q is not None and now - self._history[-1][0] <= self.config.state_timeout
            if fresh:
                self._activate(now, q)
            else:
                self.state = State.WAITING if q is None else State.STATE_LOST
            return True, "e-stop released" + ("" if fresh else f" ({self.state.value})")

    def moved(self, now: float, positions: np.ndarray) -> None:
        """The arm was put at ``positions`` from outside (a simulated task reset): drop the plan and the state
        history, and start again from there with a ramp-in (the e-stop, if latched, holds the new position)."""
        q = np.asarray(positions, dtype=float).copy()
        with self._lock:
            self._history.clear()
            self._history.append((now, q))
            self._restart(now, q)

    # ------------------------------------------------------------------------------------------ status
    def last_chunk_age(self, now: float) -> float:
        """Seconds since the last accepted chunk (inf before the first)."""
        return now - self._last_accept
