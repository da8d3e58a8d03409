"""Limits every joint command passes through: position limits, a per-step motion limit, a velocity limit, ramp-in.

The position limits come from the arm's URDF (:func:`rynnvla_ros.control.so100_description.joint_limits`); the
velocity limit is the smaller of the configured one and the URDF's. A step is scaled as a whole (all joints by the
same factor), so a limited motion keeps its direction in joint space. For ``ramp_time`` seconds after
:meth:`SafetyFilter.start` the velocity limit grows linearly from 5% to 100%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rynnvla_ros.control.so100_description import JointLimits

RAMP_FLOOR = 0.05  # fraction of the velocity limit at the very start of a ramp-in


@dataclass(frozen=True)
class SafetyConfig:
    """Node parameters of the same names."""

    max_velocity: float = 1.0  # rad/s, every joint (never above the URDF's velocity limit)
    max_step: float = 0.05  # rad per control step, whatever the time since the last one
    limit_margin: float = 0.0  # rad kept clear of each URDF position limit
    ramp_time: float = 2.0  # s

    def __post_init__(self) -> None:
        for name in ("max_velocity", "max_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.limit_margin < 0 or self.ramp_time < 0:
            raise ValueError("limit_margin and ramp_time must be >= 0")


class SafetyFilter:
    """Turns targets into commands no farther than the limits allow from the previous command."""

    def __init__(self, config: SafetyConfig, limits: JointLimits) -> None:
        self.config = config
        self.lower = limits.lower + config.limit_margin
        self.upper = limits.upper - config.limit_margin
        if np.any(self.lower >= self.upper):
            raise ValueError(f"limit_margin {config.limit_margin} leaves no room between the URDF joint limits")
        self.velocity = np.minimum(config.max_velocity, limits.velocity)
        self.last: np.ndarray | None = None
        self.last_time = 0.0
        self.start_time = 0.0

    def start(self, now: float, measured: np.ndarray) -> None:
        """(Re)start from the measured positions: the next command moves away from them slowly (ramp-in)."""
        self.last = np.asarray(measured, dtype=float).copy()
        self.last_time = self.start_time = now

    def clip(self, target: np.ndarray) -> tuple[np.ndarray, bool]:
        """``target`` inside the position limits, and whether it had to be changed."""
        clipped = np.clip(target, self.lower, self.upper)
        return clipped, bool(np.any(clipped != target))

    def ramp(self, now: float) -> float:
        """Fraction of the velocity limit in force at ``now``."""
        if self.config.ramp_time <= 0:
            return 1.0
        return float(np.clip((now - self.start_time) / self.config.ramp_time, RAMP_FLOOR, 1.0))

    def limit(self, target: np.ndarray, now: float) -> np.ndarray:
        """The command for ``now``: the step from the last command towards ``target``, scaled down to the limits."""
        if self.last is None:
            raise RuntimeError("SafetyFilter.limit() before start(): no measured state to move from")
        dt = max(now - self.last_time, 0.0)
        allowed = np.minimum(self.velocity * self.ramp(now) * dt, self.config.max_step)
        step = np.asarray(target, dtype=float) - self.last
        moving = np.abs(step) > 0
        scale = min(1.0, float(np.min(allowed[moving] / np.abs(step[moving])))) if moving.any() else 1.0
        self.last = self.last + scale * step
        self.last_time = now
        return self.last.copy()

    def hold(self, position: np.ndarray, now: float) -> np.ndarray:
        """Command ``position`` as is (e-stop: stop where the arm is); the next step starts from it."""
        self.last = np.asarray(position, dtype=float).copy()
        self.last_time = now
        return self.last.copy()
