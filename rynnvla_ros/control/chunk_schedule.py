"""Action chunks as timed joint targets: validation, conversion, blending and sampling at the control rate.

An ``ActionChunk`` row ``i`` is meant for time ``stamp + (start_step + i) * dt``; a ``JointTrajectory`` point for
``stamp + time_from_start``. Both become a :class:`Trajectory` of absolute joint positions (radians, in
:data:`~rynnvla_ros.control.so100_description.JOINT_NAMES` order). :class:`ChunkSchedule` keeps the plan being
executed: a piecewise-linear function of time that starts at the target in force when a chunk arrives (so a new
chunk never makes the command jump), drops the steps already in the past, and blends the new chunk into the old one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rynnvla_ros.control.so100_description import JOINT_NAMES

JOINT_POSITIONS = "joint_positions"
JOINT_DELTAS = "joint_deltas"
BLEND_MODES = ("latest", "crossfade", "weighted")


class ChunkRejected(ValueError):
    """A chunk that is not executed; ``str()`` is the reason."""


@dataclass(frozen=True)
class ChunkLimits:
    """What a chunk may hold before it is rejected outright (joint-limit violations are clipped, not rejected)."""

    max_steps: int = 1000
    max_abs_position: float = 2 * np.pi  # larger values are not radians (degrees sent by mistake?)
    max_abs_delta: float = np.pi
    max_future: float = 5.0  # s a chunk may start ahead of now (more: clocks out of sync)


@dataclass(frozen=True)
class Trajectory:
    """Absolute joint targets ``positions[k]`` (rad, JOINT_NAMES order) for times ``times[k]`` (s, increasing)."""

    times: np.ndarray
    positions: np.ndarray


def joint_order(names: Sequence[str]) -> np.ndarray:
    """Column of each JOINT_NAMES joint in a chunk naming ``names``; ChunkRejected unless it names each exactly once."""
    names = list(names)
    unknown = sorted(set(names) - set(JOINT_NAMES))
    if unknown:
        raise ChunkRejected(f"unknown joint(s) {', '.join(unknown)} (joints: {', '.join(JOINT_NAMES)})")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ChunkRejected(f"joint(s) named twice: {', '.join(duplicated)}")
    missing = [n for n in JOINT_NAMES if n not in names]
    if missing:
        raise ChunkRejected(f"missing joint(s) {', '.join(missing)}: a chunk must command all {len(JOINT_NAMES)}")
    return np.array([names.index(n) for n in JOINT_NAMES])


def _check_values(values: np.ndarray, bound: float, what: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ChunkRejected(f"{int(bad.sum())} non-finite value(s) (NaN/inf), first at step {row}, column {col}")
    peak = float(np.abs(values).max(initial=0.0))
    if peak > bound:
        raise ChunkRejected(f"{what} up to {peak:.4g} exceed ±{bound:.4g} rad (degrees sent instead of radians?)")


def _absolute(
    values: np.ndarray,
    action_space: str,
    stamp: float,
    reference: Callable[[float], np.ndarray | None],
    lim: ChunkLimits,
) -> np.ndarray:
    if action_space == JOINT_POSITIONS:
        _check_values(values, lim.max_abs_position, "positions")
        return values
    if action_space == JOINT_DELTAS:
        _check_values(values, lim.max_abs_delta, "deltas")
        ref = reference(stamp)
        if ref is None:
            raise ChunkRejected(f"no measured joint state at the chunk's stamp {stamp:.3f} to apply the deltas to")
        return ref[None, :] + values
    raise ChunkRejected(f"action space {action_space!r} is not executed here (only {JOINT_POSITIONS}, {JOINT_DELTAS})")


def trajectory_from_chunk(
    *,
    names: Sequence[str],
    action_space: str,
    stamp: float,
    dt: float,
    start_step: int,
    horizon: int,
    dim: int,
    data: Sequence[float],
    reference: Callable[[float], np.ndarray | None],
    limits: ChunkLimits = ChunkLimits(),
) -> Trajectory:
    """Validate the fields of an ``ActionChunk`` and return its absolute joint targets; ChunkRejected says why not.

    ``reference(t)`` is the measured joint state at time ``t`` (for joint deltas), or None when unknown.
    """
    if action_space not in (JOINT_POSITIONS, JOINT_DELTAS):
        raise ChunkRejected(
            f"action space {action_space!r} is not executed here (only {JOINT_POSITIONS}, {JOINT_DELTAS})"
        )
    if horizon == 0:
        raise ChunkRejected("empty chunk (horizon 0)")
    if horizon > limits.max_steps:
        raise ChunkRejected(f"oversized chunk: {horizon} steps > max_chunk_steps {limits.max_steps}")
    if dim != len(names):
        raise ChunkRejected(f"dim is {dim} but {len(names)} names are given")
    if len(data) != horizon * dim:
        raise ChunkRejected(f"data holds {len(data)} values, expected horizon*dim = {horizon}*{dim}")
    if not (np.isfinite(dt) and dt > 0):
        raise ChunkRejected(f"dt must be a positive number of seconds, got {dt}")
    order = joint_order(names)
    values = np.asarray(data, dtype=float).reshape(horizon, dim)[:, order]
    times = stamp + (start_step + np.arange(horizon)) * dt
    return Trajectory(times, _absolute(values, action_space, stamp, reference, limits))


def trajectory_from_points(
    *,
    names: Sequence[str],
    stamp: float,
    times_from_start: Sequence[float],
    positions: Sequence[Sequence[float]],
    limits: ChunkLimits = ChunkLimits(),
) -> Trajectory:
    """Validate the fields of a ``JointTrajectory`` (positions only) and return its targets."""
    n = len(times_from_start)
    if n == 0:
        raise ChunkRejected("trajectory without points")
    if n > limits.max_steps:
        raise ChunkRejected(f"oversized trajectory: {n} points > max_chunk_steps {limits.max_steps}")
    order = joint_order(names)
    widths = {len(p) for p in positions}
    if widths != {len(names)}:
        raise ChunkRejected(f"every point needs {len(names)} positions (one per joint name), got {sorted(widths)}")
    offsets = np.asarray(times_from_start, dtype=float)
    if not np.all(np.isfinite(offsets)) or np.any(np.diff(offsets) <= 0) or offsets[0] < 0:
        raise ChunkRejected("time_from_start must be finite, >= 0 and strictly increasing")
    values = np.asarray(positions, dtype=float)[:, order]
    return Trajectory(stamp + offsets, _absolute(values, JOINT_POSITIONS, stamp, lambda _: None, limits))


class ChunkSchedule:
    """The plan being executed: knots (time, joint targets) joined linearly, held after the last one.

    ``mode`` decides how a new chunk meets the one in progress: ``latest`` replaces it; ``crossfade`` moves from the
    old plan to the new one over ``crossfade_time`` seconds (weight of the new plan growing linearly from 0 to 1,
    both plans evaluated at every instant); ``weighted`` averages the overlapping part (``weight`` on the new chunk,
    LeRobot's async-inference aggregation) and follows the new chunk after it.
    """

    def __init__(self, mode: str = "crossfade", crossfade_time: float = 0.2, weight: float = 0.7) -> None:
        if mode not in BLEND_MODES:
            raise ValueError(f"blend mode must be one of {', '.join(BLEND_MODES)}, got {mode!r}")
        if crossfade_time <= 0:
            raise ValueError(f"crossfade_time must be > 0 s, got {crossfade_time}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"blend weight must be in [0, 1], got {weight}")
        self.mode, self.crossfade_time, self.weight = mode, crossfade_time, weight
        self.clear()

    @property
    def empty(self) -> bool:
        """No plan (nothing received since the last clear)."""
        return self.times.size == 0

    @property
    def end_time(self) -> float:
        """Time after which the plan no longer changes (-inf without a plan)."""
        if self.empty:
            return -np.inf
        return max(float(self.times[-1]), self._fade_end if self._previous is not None else -np.inf)

    def clear(self) -> None:
        """Forget the plan."""
        self.times = np.zeros(0)
        self.positions = np.zeros((0, len(JOINT_NAMES)))
        self._previous: ChunkSchedule | None = None  # the plan being faded out (crossfade)
        self._fade_start = self._fade_end = -np.inf

    def hold(self, now: float, position: np.ndarray) -> None:
        """Replace the plan by ``position`` from ``now`` on (the rest of the plan is dropped)."""
        self.clear()
        self.times, self.positions = np.array([now]), np.asarray(position, dtype=float)[None, :].copy()

    def sample(self, t: float) -> np.ndarray | None:
        """The planned target at time ``t`` (linear between knots, held at the ends); None without a plan."""
        if self.empty:
            return None
        value = _interp(t, self.times, self.positions)
        if self._previous is not None and t < self._fade_end:
            w = float(np.clip((t - self._fade_start) / (self._fade_end - self._fade_start), 0.0, 1.0))
            value = (1 - w) * self._previous.sample(t) + w * value
        return value

    def add(self, traj: Trajectory, now: float, current: np.ndarray) -> int:
        """Merge ``traj`` into the plan at time ``now``; ``current`` is the target in force if there is no plan.

        Steps at or before ``now`` are skipped; returns how many steps were kept (ChunkRejected when none).
        """
        future = traj.times > now
        kept = int(future.sum())
        if kept == 0:
            late = now - float(traj.times[-1])
            raise ChunkRejected(f"all {traj.times.size} steps are in the past (the last one by {late:.3f} s)")
        if self._previous is not None and now >= self._fade_end:
            self._previous = None  # that fade is over
        start = np.asarray(current, dtype=float) if self.empty else self.sample(now)
        new_t = np.concatenate([[now], traj.times[future]])
        new_q = np.vstack([start, traj.positions[future]])
        if self.empty or self.mode == "latest" or self.end_time <= now:
            self.clear()
            self.times, self.positions = new_t, new_q
        elif self.mode == "crossfade":
            previous = ChunkSchedule(self.mode, self.crossfade_time, self.weight)
            previous.times, previous.positions = self.times, self.positions
            previous._previous, previous._fade_start, previous._fade_end = (
                self._previous,
                self._fade_start,
                self._fade_end,
            )
            self.times, self.positions = new_t, new_q
            self._previous, self._fade_start, self._fade_end = previous, now, now + self.crossfade_time
        else:  # weighted: exact on the union of both plans' knots (both are linear between them)
            old_end = self.end_time
            knots = np.unique(np.concatenate([new_t, self.times[self.times > now]]))
            old = np.stack([self.sample(t) for t in knots])
            new = _interp_many(knots, new_t, new_q)
            w = np.where(knots <= old_end, self.weight, 1.0)[:, None]  # at `now` both plans are at `start`
            self.clear()
            self.times, self.positions = knots, (1 - w) * old + w * new
        return kept


def _interp(t: float, times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.array([np.interp(t, times, positions[:, j]) for j in range(positions.shape[1])])


def _interp_many(ts: np.ndarray, times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(ts, times, positions[:, j]) for j in range(positions.shape[1])], axis=1)
