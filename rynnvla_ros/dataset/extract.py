"""Values of deserialized bag messages: joint vectors, images, header stamps, episode and task text.

Supported sources (chosen by the message type found in the bag):

- joint vectors: ``sensor_msgs/JointState`` (positions by name), ``rynnvla_ros/ActionChunk`` (first row),
  ``trajectory_msgs/JointTrajectory`` (first point), ``std_msgs/Float64MultiArray`` / ``Float32MultiArray``
  (no names: the values are taken in the configured joint order);
- images: ``sensor_msgs/Image`` (rgb8, bgr8, mono8) and ``sensor_msgs/CompressedImage`` (png, jpeg);
- episode boundaries and task text: see :mod:`rynnvla_ros.dataset.episodes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rynnvla_ros.dataset.types import ACTION_CHUNK
from rynnvla_ros.image_conversion import ENCODINGS, compressed_to_array, image_to_array, to_rgb

JOINT_STATE = "sensor_msgs/msg/JointState"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
ARRAYS = ("std_msgs/msg/Float64MultiArray", "std_msgs/msg/Float32MultiArray")
VECTOR_TYPES = (JOINT_STATE, ACTION_CHUNK, JOINT_TRAJECTORY, *ARRAYS)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
RGB_ENCODINGS = ("rgb8", "bgr8", "mono8")


class MessageError(ValueError):
    """A message whose content cannot be used (counted as corrupt in the report)."""


@dataclass(frozen=True)
class Vector:
    """A joint (or other) vector read from one message."""

    values: np.ndarray
    names: list[str] | None
    joint_space: bool = True
    """False for Cartesian ActionChunks (no unit conversion)."""
    delta: bool = False
    """True for ActionChunks of joint deltas (converted without an offset)."""


def header_ns(msg: object) -> int | None:
    """``header.stamp`` in ns, or None when the message has no header or a zero stamp."""
    header = getattr(msg, "header", None)
    if header is None:
        return None
    stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return stamp or None


def read_vector(msg: object, msgtype: str) -> Vector:
    """The vector a message carries (see the module docstring); MessageError when it is malformed."""
    if msgtype == JOINT_STATE:
        names, values = list(msg.name), np.asarray(msg.position, dtype=np.float64)
        if len(names) != values.size:
            raise MessageError(f"JointState has {len(names)} names but {values.size} positions")
        return Vector(values, names)
    if msgtype == ACTION_CHUNK:
        dim, data = int(msg.dim), np.asarray(msg.data, dtype=np.float64)
        if dim <= 0 or int(msg.horizon) <= 0 or data.size != dim * int(msg.horizon):
            raise MessageError(f"ActionChunk data has {data.size} values for horizon {msg.horizon} x dim {dim}")
        names = list(msg.names) or None
        if names is not None and len(names) != dim:
            raise MessageError(f"ActionChunk has {len(names)} names for dim {dim}")
        space = str(msg.action_space)
        return Vector(data[:dim], names, joint_space=space != "eef_delta_gripper", delta=space == "joint_deltas")
    if msgtype == JOINT_TRAJECTORY:
        if not msg.points:
            raise MessageError("JointTrajectory has no points")
        values = np.asarray(msg.points[0].positions, dtype=np.float64)
        names = list(msg.joint_names)
        if len(names) != values.size:
            raise MessageError(f"JointTrajectory has {len(names)} joint names but {values.size} positions")
        return Vector(values, names)
    if msgtype in ARRAYS:
        return Vector(np.asarray(msg.data, dtype=np.float64), None)
    raise MessageError(f"{msgtype} is not a supported vector type; use one of {', '.join(VECTOR_TYPES)}")


def select(vector: Vector, joints: list[str]) -> np.ndarray:
    """The values of ``joints`` in that order (by name; unnamed vectors must have exactly that length)."""
    if vector.names is None:
        if vector.values.size != len(joints):
            raise MessageError(f"unnamed vector has {vector.values.size} values, expected {len(joints)}")
        return vector.values
    index = {n: i for i, n in enumerate(vector.names)}
    missing = [j for j in joints if j not in index]
    if missing:
        raise MessageError(f"joints {missing} missing from message with names {vector.names}")
    return vector.values[[index[j] for j in joints]]


def check_image(msg: object, msgtype: str) -> tuple[int, int] | None:
    """Cheap validity check of an image message; returns (height, width) for raw images, None for compressed."""
    if msgtype == COMPRESSED_IMAGE:
        if len(msg.data) == 0:
            raise MessageError("empty CompressedImage")
        return None
    if msg.encoding not in RGB_ENCODINGS:
        raise MessageError(f"image encoding {msg.encoding!r} is not supported; use one of {RGB_ENCODINGS}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    channels = ENCODINGS[msg.encoding][1]
    if h == 0 or w == 0 or step < w * channels or len(msg.data) != step * h:
        raise MessageError(f"image {w}x{h} step {step} has {len(msg.data)} bytes")
    return h, w


def decode_rgb(msg: object, msgtype: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image message; MessageError when it cannot be decoded."""
    try:
        if msgtype == COMPRESSED_IMAGE:
            array, encoding = compressed_to_array(msg)
        else:
            array, encoding = image_to_array(msg), msg.encoding
        return to_rgb(array, encoding)
    except ValueError as exc:  # ImageConversionError is a ValueError
        raise MessageError(str(exc)) from exc
