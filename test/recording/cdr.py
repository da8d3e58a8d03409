"""Serialized (CDR) test messages whose payload carries a sequence number, built with rosbags' typestore."""

from __future__ import annotations

import numpy as np

from rynnvla_ros.dataset.types import base_typestore

STORE = base_typestore()
T = STORE.types
IMAGE, STATE, STRING = "sensor_msgs/msg/Image", "sensor_msgs/msg/JointState", "std_msgs/msg/String"
NS = 1_000_000_000
T0 = 1_700_000_000 * NS
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def header(seq: int, stamp_ns: int | None = None) -> object:
    ns = seq * NS if stamp_ns is None else stamp_ns
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=ns // NS, nanosec=ns % NS), frame_id=str(seq)
    )


def image_cdr(seq: int, size: int = 16, stamp_ns: int | None = None) -> bytes:
    """An rgb8 image whose pixels are ``seq % 256`` and whose frame_id is ``seq``."""
    pixels = np.full((size, size, 3), seq % 256, np.uint8)
    msg = T[IMAGE](
        header=header(seq, stamp_ns),
        height=size,
        width=size,
        encoding="rgb8",
        is_bigendian=0,
        step=size * 3,
        data=pixels.reshape(-1),
    )
    return bytes(STORE.serialize_cdr(msg, IMAGE))


def state_cdr(seq: int, stamp_ns: int | None = None, names: list[str] | None = None) -> bytes:
    """A JointState with frame_id ``seq`` and positions ``seq * 0.001 * (1, -1, ...)``."""
    names = names or ["a", "b"]
    position = np.array([seq * 0.001 * (-1) ** k for k in range(len(names))], np.float64)
    msg = T[STATE](
        header=header(seq, stamp_ns),
        name=list(names),
        position=position,
        velocity=np.zeros(0),
        effort=np.zeros(0),
    )
    return bytes(STORE.serialize_cdr(msg, STATE))
