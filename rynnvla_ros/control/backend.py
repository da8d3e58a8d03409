"""The small interface between the ``so100_controller`` node and an arm: real (LeRobot) or simulated (MuJoCo).

All positions are radians, in :data:`rynnvla_ros.control.so100_description.JOINT_NAMES` order.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rynnvla_ros.tasks.block_in_circle import Layout, TaskState

FrameCallback = Callable[[dict[str, np.ndarray], float], None]
"""Receives ``{camera name: RGB (H, W, 3) uint8}`` and the wall time (s) the frames show."""


class BackendError(RuntimeError):
    """The arm cannot be reached or did not answer; the message says why and what to check."""


@dataclass(frozen=True)
class JointReading:
    """One measurement of the arm: positions (rad), and velocities (rad/s) / efforts (N m) where known."""

    positions: np.ndarray
    velocities: np.ndarray | None = None
    efforts: np.ndarray | None = None


class Backend(abc.ABC):
    """An arm that can be connected, read, commanded and closed; some also render camera frames."""

    name: str = "backend"
    camera_names: tuple[str, ...] = ()
    task_seed: int = -1  # seed of the simulated task's current layout (-1: none)

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the arm; raises :class:`BackendError` when it cannot (the caller retries later)."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """Whether :meth:`read` and :meth:`write` can be used."""

    @abc.abstractmethod
    def read(self) -> JointReading:
        """Measure the joints; raises :class:`BackendError` on a failed read."""

    @abc.abstractmethod
    def write(self, positions: np.ndarray) -> None:
        """Send joint position targets; raises :class:`BackendError` on a failed write."""

    def start_cameras(self, callback: FrameCallback) -> None:  # noqa: B027 - optional, most arms have no cameras
        """Start delivering camera frames to ``callback`` (from a background thread); no-op without cameras."""

    def intrinsics(self, camera: str) -> tuple[float, float, float, float]:
        """``(fx, fy, cx, cy)`` in pixels of one of :attr:`camera_names`."""
        raise NotImplementedError(f"{self.name} has no camera {camera!r}")

    def reset_task(self, seed: int, arm_positions: tuple[float, ...]) -> Layout:
        """Lay out the simulated task from ``seed``, the arm at ``arm_positions``; BackendError without one."""
        raise BackendError(f"the {self.name} arm has no simulated task")

    def task_state(self) -> TaskState | None:
        """The simulated task's state now; None without one."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release the arm (idempotent)."""
