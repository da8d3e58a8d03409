"""Foxglove messages (foxglove-sdk) of the graph's data: images, joint states, link transforms, the planned path and
the URDF, and the assets (meshes) the Foxglove app fetches for the URDF. No ROS here: the node hands in plain values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from foxglove import Schema
from foxglove.messages import (
    Color,
    Duration,
    FrameTransform,
    FrameTransforms,
    JointState,
    JointStates,
    LinePrimitive,
    LinePrimitiveLineType,
    Point3,
    Pose,
    Quaternion,
    RawImage,
    SceneEntity,
    SceneUpdate,
    SpherePrimitive,
    Timestamp,
    Vector3,
)

from rynnvla_ros.inference.history import NS
from rynnvla_ros.viewing.kinematics import LinkTransform
from rynnvla_ros.viewing.planned_path import Plan, path_colors

PLANNED_PATH_ENTITY = "planned_path"
# The Foxglove 3D panel loads a URDF from a topic whose schema is std_msgs/String (as robot_state_publisher's
# /robot_description); a JSON channel with this schema name and a "data" string is read the same way.
ROBOT_DESCRIPTION_SCHEMA = Schema(
    name="std_msgs/msg/String",
    encoding="jsonschema",
    data=json.dumps({"type": "object", "properties": {"data": {"type": "string"}}, "required": ["data"]}).encode(),
)


def timestamp(ns: int) -> Timestamp:
    """Integer nanoseconds as a Foxglove Timestamp."""
    sec, nsec = divmod(int(ns), NS)
    return Timestamp(sec, nsec)


def raw_image(stamp: int, frame_id: str, width: int, height: int, encoding: str, step: int, data: bytes) -> RawImage:
    """An image as Foxglove's RawImage (ROS encodings such as rgb8, bgr8, mono8, 16UC1 are understood as such)."""
    return RawImage(
        timestamp=timestamp(stamp),
        frame_id=frame_id,
        width=width,
        height=height,
        encoding=encoding,
        step=step,
        data=bytes(data),
    )


def joint_states(
    stamp: int, names: Sequence[str], positions: Sequence[float], velocities: Sequence[float] = ()
) -> JointStates:
    """Joint positions (and velocities when given) as Foxglove's JointStates."""
    joints = []
    for i, name in enumerate(names):
        v = float(velocities[i]) if i < len(velocities) else None
        joints.append(JointState(name=str(name), position=float(positions[i]), velocity=v))
    return JointStates(timestamp=timestamp(stamp), joints=joints)


def frame_transforms(stamp: int, transforms: Sequence[LinkTransform]) -> FrameTransforms:
    """The arm's link transforms as Foxglove's FrameTransforms (the 3D panel's TF tree)."""
    out = []
    for t in transforms:
        x, y, z = (float(v) for v in t.translation)
        qx, qy, qz, qw = (float(v) for v in t.rotation)
        out.append(
            FrameTransform(
                timestamp=timestamp(stamp),
                parent_frame_id=t.parent,
                child_frame_id=t.child,
                translation=Vector3(x=x, y=y, z=z),
                rotation=Quaternion(x=qx, y=qy, z=qz, w=qw),
            )
        )
    return FrameTransforms(transforms=out)


def _color(rgba: np.ndarray) -> Color:
    r, g, b, a = (float(v) for v in rgba)
    return Color(r=r, g=g, b=b, a=a)


def planned_path_scene(
    plan: Plan, frame_id: str, lifetime: float, line_width: float = 0.004, point_size: float = 0.01
) -> SceneUpdate:
    """A plan as a scene entity: the gripper's path (a line coloured by step), a sphere per step and the arm's
    links at the last step (a ghost), in ``frame_id``; it disappears ``lifetime`` s after it is received."""
    colors = path_colors(len(plan.gripper), plan.dry_run)

    def pose(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> Pose:
        return Pose(position=Vector3(x=x, y=y, z=z), orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))

    identity = pose()

    def points(xyz: np.ndarray) -> list[Point3]:
        return [Point3(x=float(x), y=float(y), z=float(z)) for x, y, z in xyz]

    path = LinePrimitive(
        type=LinePrimitiveLineType.LineStrip,
        pose=identity,
        thickness=line_width,
        points=points(plan.gripper),
        colors=[_color(c) for c in colors],
    )
    ghost = LinePrimitive(
        type=LinePrimitiveLineType.LineStrip,
        pose=identity,
        thickness=3 * line_width,
        points=points(plan.final_pose),
        color=_color(path_colors(1, plan.dry_run, alpha=0.5)[0]),
    )
    spheres = [
        SpherePrimitive(
            pose=pose(float(x), float(y), float(z)),
            size=Vector3(x=point_size, y=point_size, z=point_size),
            color=_color(c),
        )
        for (x, y, z), c in zip(plan.gripper, colors, strict=True)
    ]
    life_ns = max(0, round(lifetime * NS))
    entity = SceneEntity(
        timestamp=timestamp(int(plan.times[0])),
        frame_id=frame_id,
        id=PLANNED_PATH_ENTITY,
        lifetime=Duration(life_ns // NS, life_ns % NS),
        lines=[path, ghost],
        spheres=spheres,
    )
    return SceneUpdate(entities=[entity])


def robot_description(urdf: str) -> dict:
    """The URDF as a message of :data:`ROBOT_DESCRIPTION_SCHEMA`."""
    return {"data": urdf}


class AssetResolver:
    """Serves ``package://<name>/<path>`` URIs from local folders (the URDF's meshes), nothing outside them."""

    def __init__(self, packages: Mapping[str, str | Path]) -> None:
        self.packages = {name: Path(root).resolve() for name, root in packages.items()}
        self.served = 0
        self.refused: list[str] = []

    def path(self, uri: str) -> Path | None:
        """The file behind ``uri``, or None when it is not a file under a known package."""
        if not uri.startswith("package://"):
            return None
        name, _, rest = uri[len("package://") :].partition("/")
        root = self.packages.get(name)
        if root is None or not rest:
            return None
        path = (root / rest).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def __call__(self, uri: str) -> bytes | None:
        """foxglove-sdk's asset handler: the file's bytes, or None (the app then shows that the asset is missing)."""
        path = self.path(uri)
        if path is None:
            self.refused.append(uri)
            return None
        self.served += 1
        return path.read_bytes()
