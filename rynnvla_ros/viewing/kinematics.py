"""The arm's link transforms for joint positions, as a TF tree or a viewer wants them (from the committed URDF)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rynnvla_ros.control import so100_description as desc

ARM_CHAIN: tuple[str, ...] = (
    "base_link",
    "shoulder_link",
    "upper_arm_link",
    "lower_arm_link",
    "wrist_link",
    "gripper_link",
    desc.EE_LINK,
)
"""Links from the base to the gripper's tool frame (the outline of the 'ghost' arm)."""


@dataclass(frozen=True)
class LinkTransform:
    """Pose of ``child`` in ``parent``: translation (m) and rotation as a unit quaternion (x, y, z, w)."""

    parent: str
    child: str
    translation: np.ndarray
    rotation: np.ndarray


def matrix_to_quaternion(r: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w), w >= 0."""
    m = np.asarray(r, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s])
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s])
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def joint_positions_by_name(names, positions) -> dict[str, float]:
    """A joint state's positions by name (NaN and unknown joints are left out: their links keep the zero pose)."""
    return {str(n): float(p) for n, p in zip(names, positions, strict=False) if np.isfinite(p)}


def link_transforms(q: dict[str, float] | np.ndarray) -> list[LinkTransform]:
    """One transform per URDF joint (parent link -> child link) for joint positions ``q`` (by name, or in
    JOINT_NAMES order); joints not given stay at 0. Fixed joints are included, so the list is the whole tree."""
    values = desc.joint_values(q)
    out = []
    for j in desc.urdf_joints().values():
        t = desc.joint_transform(j, values.get(j.name, 0.0))
        out.append(LinkTransform(j.parent, j.child, t[:3, 3], matrix_to_quaternion(t[:3, :3])))
    return out


def chain_points(q: np.ndarray, chain: tuple[str, ...] = ARM_CHAIN) -> np.ndarray:
    """(len(chain), 3) positions (m, base_link frame) of the links of ``chain`` for joint positions ``q``."""
    poses = desc.forward_kinematics(q)
    return np.array([poses[link][:3, 3] for link in chain])
