"""Action chunks as the world model reads them: which step is due when, and that step as a model action.

Row i of a chunk is due at ``stamp + (start_step + i) * dt``; the world model predicts the frames that follow the
step due at its observation time t, i.e. the frames at ``stamp + (start_step + i + 1) * dt``. Chunks of
end-effector deltas (``eef_delta_gripper``, LIBERO) hold the model's actions themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rynnvla_ros.inference.history import NS
from rynnvla_ros.inference.robot_io import EEF_DELTA_GRIPPER, JOINT_POSITIONS, RobotIO

JOINT_DELTAS = "joint_deltas"
SPACES = (JOINT_POSITIONS, JOINT_DELTAS, EEF_DELTA_GRIPPER)


class ChunkError(ValueError):
    """A chunk that cannot be used; the message says why."""


@dataclass(frozen=True)
class Chunk:
    """A validated action chunk: ``rows`` (horizon, dim) with columns named by ``names``."""

    stamp: int
    names: tuple[str, ...]
    space: str
    dt: float
    start_step: int
    rows: np.ndarray

    @classmethod
    def from_fields(
        cls,
        stamp: int,
        names: Sequence[str],
        space: str,
        dt: float,
        start_step: int,
        horizon: int,
        dim: int,
        data: Sequence[float],
    ) -> Chunk:
        """From the fields of an ``ActionChunk`` message; ChunkError when they are inconsistent."""
        if space not in SPACES:
            raise ChunkError(f"action_space {space!r} is not one of {', '.join(SPACES)}")
        if not (math.isfinite(dt) and dt > 0):
            raise ChunkError(f"dt must be > 0, got {dt}")
        if horizon < 1 or dim != len(names) or len(data) != horizon * dim:
            raise ChunkError(f"horizon {horizon} x dim {dim} does not fit {len(names)} names and {len(data)} values")
        rows = np.asarray(data, dtype=np.float64).reshape(horizon, dim)
        if not np.all(np.isfinite(rows)):
            raise ChunkError("chunk holds non-finite values")
        return cls(int(stamp), tuple(names), space, float(dt), int(start_step), rows)

    @property
    def horizon(self) -> int:
        return int(self.rows.shape[0])

    def step_at(self, t: int) -> int:
        """Row due at time ``t`` (ns): rows before the chunk's first map to 0; ChunkError after its last."""
        steps = math.floor((t - self.stamp) / (self.dt * NS) + 1e-6) - self.start_step
        if steps >= self.horizon:
            raise ChunkError(f"the chunk ended {(steps - self.horizon + 1) * self.dt:.3f} s before the observation")
        return max(steps, 0)

    def next_frame_time(self, row: int) -> int:
        """Time (ns) of the frames that follow row ``row``."""
        return self.stamp + round((self.start_step + row + 1) * self.dt * NS)

    def model_action(self, row: int, io: RobotIO, q: np.ndarray | None) -> np.ndarray:
        """Row ``row`` as the model's action vector (``q``: joint state in rad, model order; needed for deltas)."""
        if (self.space == EEF_DELTA_GRIPPER) == io.joint_actions:
            raise ChunkError(f"a {self.space} chunk does not fit the robot I/O's {io.action_space} actions")
        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in io.chunk_names if n not in index]
        if missing:
            raise ChunkError(
                f"the chunk lacks {'joint(s)' if io.joint_actions else 'dimension(s)'} {', '.join(missing)}"
            )
        values = self.rows[row, [index[n] for n in io.chunk_names]]
        if self.space == EEF_DELTA_GRIPPER:
            return values
        needs_state = self.space == JOINT_DELTAS or bool(io.relative_mask.any())
        if needs_state and q is None:
            raise ChunkError("a joint state is needed to express this action for the model")
        target = values + q if self.space == JOINT_DELTAS else values
        return io.to_model_action(target, q if q is not None else np.zeros(io.dim))
