"""An action chunk as the arm will execute it: joint targets per step, the gripper's path and the final pose.

The targets are what ``so100_controller`` aims at (deltas added to the joint state at the chunk's stamp, joints the
chunk does not name kept at that state, everything clipped into the URDF limits), and the path is the gripper
tool frame (``gripper_frame_link``) of each target by forward kinematics, in ``base_link``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.inference.chunks import JOINT_DELTAS, Chunk, ChunkError
from rynnvla_ros.inference.history import NS
from rynnvla_ros.viewing.kinematics import ARM_CHAIN, chain_points

FRAME = desc.BASE_LINK


@dataclass(frozen=True)
class Plan:
    """The planned motion of one chunk."""

    times: np.ndarray
    """(H,) int ns: when each step is due."""
    joints: np.ndarray
    """(H, 6) rad, JOINT_NAMES order: the clipped joint targets."""
    gripper: np.ndarray
    """(H, 3) m, base_link: the gripper tool frame at each step."""
    final_pose: np.ndarray
    """(len(ARM_CHAIN), 3) m, base_link: the arm's links at the last step (a 'ghost' of where it is going)."""
    dry_run: bool = False

    @property
    def duration(self) -> float:
        """s from the first step to the last."""
        return float(self.times[-1] - self.times[0]) / NS

    def lifetime(self, now: int, hold_time: float) -> float:
        """s a drawing of the plan received at ``now`` (ns) stays: until its last step is due, then ``hold_time``
        (at least 0.1 s; viewers count a lifetime from when they receive the drawing)."""
        return max(0.1, (int(self.times[-1]) - now) / NS + hold_time)


def joint_targets(chunk: Chunk, state: dict[str, float] | None) -> np.ndarray:
    """(H, 6) absolute joint targets in JOINT_NAMES order, clipped into the joint limits.

    ``state``: joint positions by name at the chunk's stamp, needed for deltas and for joints the chunk lacks;
    ChunkError when it is needed and missing, or when the chunk names no arm joint at all.
    """
    index = {n: i for i, n in enumerate(chunk.names)}
    if not any(n in index for n in desc.JOINT_NAMES):
        raise ChunkError(f"the chunk names none of the arm's joints ({', '.join(desc.JOINT_NAMES)})")
    need = [n for n in desc.JOINT_NAMES if n not in index or chunk.space == JOINT_DELTAS]
    missing = [n for n in need if state is None or n not in state]
    if missing:
        raise ChunkError(f"no joint state for {', '.join(missing)}, which this chunk needs")
    out = np.empty((chunk.horizon, desc.N_JOINTS))
    for j, name in enumerate(desc.JOINT_NAMES):
        if name not in index:
            out[:, j] = state[name]
        elif chunk.space == JOINT_DELTAS:
            out[:, j] = state[name] + chunk.rows[:, index[name]]
        else:
            out[:, j] = chunk.rows[:, index[name]]
    return desc.joint_limits().clip(out)


def plan_chunk(chunk: Chunk, state: dict[str, float] | None = None, dry_run: bool = False) -> Plan:
    """The :class:`Plan` of ``chunk`` (``state`` as for :func:`joint_targets`)."""
    joints = joint_targets(chunk, state)
    steps = chunk.start_step + np.arange(chunk.horizon)
    times = chunk.stamp + np.round(steps * chunk.dt * NS).astype(np.int64)
    gripper = np.array([desc.forward_kinematics(q)[desc.EE_LINK][:3, 3] for q in joints])
    return Plan(times, joints, gripper, chain_points(joints[-1], ARM_CHAIN), dry_run)


def path_colors(n: int, dry_run: bool, alpha: float = 1.0) -> np.ndarray:
    """(n, 4) RGBA in 0..1 along a path: from light to saturated, green for executed chunks, orange for dry runs."""
    start, end = (
        (np.array([1.0, 0.85, 0.6]), np.array([1.0, 0.5, 0.0]))
        if dry_run
        else (
            np.array([0.6, 1.0, 0.6]),
            np.array([0.0, 0.7, 0.2]),
        )
    )
    f = np.linspace(0.0, 1.0, n)[:, None] if n > 1 else np.ones((1, 1))
    rgb = start + f * (end - start)
    return np.hstack([rgb, np.full((n, 1), alpha)])
