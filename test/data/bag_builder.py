"""Writes small rosbag2 bags (mcap or sqlite3) with rosbags for the converter tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from rynnvla_ros.dataset.types import ACTION_CHUNK, base_typestore

STORE = base_typestore()
T = STORE.types
NS = 1_000_000_000


def stamp(ns: int) -> object:
    return T["builtin_interfaces/msg/Time"](sec=ns // NS, nanosec=ns % NS)


def header(ns: int) -> object:
    return T["std_msgs/msg/Header"](stamp=stamp(ns), frame_id="")


def image(ns: int, value: int, height: int = 32, width: int = 48, encoding: str = "rgb8") -> object:
    """A uniform image whose first channel is ``value`` (so a test can tell frames apart after compression)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = value, 100, 50
    if encoding == "bgr8":
        pixels = pixels[..., ::-1]
    if encoding == "mono8":
        pixels = pixels[..., :1]
    return T["sensor_msgs/msg/Image"](
        header=header(ns),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * pixels.shape[2],
        data=np.ascontiguousarray(pixels).reshape(-1),
    )


def compressed(ns: int, value: int, height: int = 32, width: int = 48) -> object:
    """A png CompressedImage (BGR on the wire) whose red channel is ``value``."""
    import cv2

    bgr = np.zeros((height, width, 3), np.uint8)
    bgr[..., 2], bgr[..., 1] = value, 30
    ok, buf = cv2.imencode(".png", bgr)
    assert ok
    return T["sensor_msgs/msg/CompressedImage"](
        header=header(ns), format="bgr8; png compressed bgr8", data=buf.reshape(-1)
    )


def joint_state(ns: int, names: list[str], positions: list[float]) -> object:
    return T["sensor_msgs/msg/JointState"](
        header=header(ns),
        name=list(names),
        position=np.asarray(positions, np.float64),
        velocity=np.zeros(0),
        effort=np.zeros(0),
    )


def action_chunk(ns: int, names: list[str], rows: np.ndarray, space: str = "joint_positions") -> object:
    rows = np.asarray(rows, np.float32)
    return T[ACTION_CHUNK](
        header=header(ns),
        names=list(names),
        action_space=space,
        dt=1 / 30,
        start_step=0,
        horizon=rows.shape[0],
        dim=rows.shape[1],
        data=rows.reshape(-1),
        seq=0,
        inference_time=0.0,
        dry_run=False,
    )


def string(text: str) -> object:
    return T["std_msgs/msg/String"](data=text)


def int32(value: int) -> object:
    return T["std_msgs/msg/Int32"](data=value)


@dataclass
class BagSpec:
    """Messages to write: (topic, msgtype, receive time ns, message or raw CDR bytes)."""

    messages: list[tuple[str, str, int, object]] = field(default_factory=list)

    def add(self, topic: str, msgtype: str, receive_ns: int, msg: object) -> None:
        self.messages.append((topic, msgtype, int(receive_ns), msg))

    def write(self, path: Path, storage: str = "mcap") -> Path:
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        with Writer(path, version=9, storage_plugin=plugin) as writer:
            conns = {}
            for topic, msgtype, receive_ns, msg in sorted(self.messages, key=lambda m: m[2]):
                if topic not in conns:
                    conns[topic] = writer.add_connection(topic, msgtype, typestore=STORE)
                data = msg if isinstance(msg, bytes | bytearray) else STORE.serialize_cdr(msg, msgtype)
                writer.write(conns[topic], receive_ns, bytes(data))
        return path


JOINTS = ["shoulder_pan", "elbow_flex", "gripper"]
FRONT, WRIST, STATE, LEADER = (
    "/camera/front/image_raw",
    "/camera/wrist/image_raw",
    "/joint_states",
    "/leader/joint_states",
)
T0 = 1_700_000_000 * NS
MS = 1_000_000


@dataclass
class Truth:
    """What was written: per stream a list of (receive ns, header ns, value)."""

    front: list[tuple[int, int, int]] = field(default_factory=list)
    wrist: list[tuple[int, int, int]] = field(default_factory=list)
    state: list[tuple[int, int, list[float]]] = field(default_factory=list)
    action: list[tuple[int, int, list[float]]] = field(default_factory=list)
    late_frame: int | None = None
    late_state: list[float] | None = None


def demo_bag(seconds: float = 2.0, seed: int = 0, stale_gap: bool = True, late: bool = True) -> tuple[BagSpec, Truth]:
    """Front camera 30 Hz (jittered, frame 17 missing, 8 ms header lag), wrist 30 Hz, joint states 100 Hz (one
    message arriving 38 ms late, a 0.25 s pause), leader arm 50 Hz."""
    rng = np.random.default_rng(seed)
    spec, truth = BagSpec(), Truth()
    n = int(seconds * 30)
    for i in range(n):
        recv = T0 + round(i * NS / 30) + int(rng.integers(-4 * MS, 4 * MS))
        if i != 17:
            truth.front.append((recv, recv - 8 * MS, (i * 4) % 240))
        recv_w = T0 + 12 * MS + round(i * NS / 30) + int(rng.integers(-4 * MS, 4 * MS))
        truth.wrist.append((recv_w, recv_w - 3 * MS, (i * 4 + 120) % 240))
    late_at = None
    if late:  # the state message stamped 40 ms before front frame 20 arrives 2 ms before that frame
        truth.late_frame = 19  # index in truth.front (frame 17 is missing)
        late_at = truth.front[truth.late_frame][0]
    for j in range(int(seconds * 100) + 3):
        s = T0 - 30 * MS + j * 10 * MS
        if stale_gap and T0 + 1200 * MS <= s < T0 + 1450 * MS:
            continue
        positions = [0.001 * j, -0.002 * j, 0.3]
        recv = s + 1 * MS
        if late_at is not None and truth.late_state is None and s >= late_at - 40 * MS:
            recv, truth.late_state = late_at - 2 * MS, positions
        elif late_at is not None and late_at - 2 * MS <= recv <= late_at:
            continue  # keep the late message the newest one received before that frame
        truth.state.append((recv, s, positions))
    for j in range(int(seconds * 50)):
        s = T0 + 20 * MS + j * 20 * MS
        truth.action.append((s + 2 * MS, s, [0.5 + 0.003 * j, 0.1, -0.2]))
    for recv, head, value in truth.front:
        spec.add(FRONT, "sensor_msgs/msg/Image", recv, image(head, value))
    for recv, head, value in truth.wrist:
        spec.add(WRIST, "sensor_msgs/msg/Image", recv, image(head, value, encoding="bgr8"))
    for recv, head, pos in truth.state:
        spec.add(STATE, "sensor_msgs/msg/JointState", recv, joint_state(head, JOINTS, pos))
    for recv, head, pos in truth.action:
        spec.add(LEADER, "sensor_msgs/msg/JointState", recv, joint_state(head, JOINTS, pos))
    return spec, truth


def latest(stream: list[tuple[int, int, object]], t: int, use_header: bool, max_age_ns: int) -> object | None:
    """Reference implementation of causal sampling: the value of the newest message at or before ``t``."""
    best = None
    for recv, head, value in stream:
        when = head if use_header else recv
        if when <= t and (best is None or when >= best[0]):
            best = (when, value)
    if best is None or t - best[0] > max_age_ns:
        return None
    return best[1]


def expected_rows(truth: Truth, use_header: bool = False, action_age_ns: int = 100 * MS) -> list[dict]:
    """The rows the converter must write: one per front frame whose every stream has a fresh sample (state and
    wrist image at most 0.1 s old)."""
    rows = []
    for recv, head, value in sorted(truth.front, key=lambda f: f[1] if use_header else f[0]):
        t = head if use_header else recv
        state = latest(truth.state, t, use_header, 100 * MS)
        action = latest(truth.action, t, use_header, action_age_ns)
        wrist = latest(truth.wrist, t, use_header, 100 * MS)
        if state is not None and action is not None and wrist is not None:
            rows.append({"time": t, "front": value, "wrist": wrist, "state": state, "action": action})
    return rows
