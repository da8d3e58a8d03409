"""Conversion settings and the first pass over a bag: message times and values of every topic, no pixels kept."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from rynnvla_ros import topics
from rynnvla_ros.dataset import extract
from rynnvla_ros.dataset.episodes import EPISODE_TYPES, STRING, parse_command
from rynnvla_ros.dataset.sampling import Stream
from rynnvla_ros.dataset.types import typestore_for
from rynnvla_ros.dataset.units import JointUnits

TIME_SOURCES = ("receive", "header")


class BagError(RuntimeError):
    """A bag that cannot be converted; the message names the file and the reason."""


@dataclass
class BagConfig:
    """How bags become a LeRobot dataset (see ``rynnvla-convert bags --help`` for each setting)."""

    cameras: dict[str, str] = field(default_factory=lambda: {"front": topics.FRONT_IMAGE, "wrist": topics.WRIST_IMAGE})
    """Camera name (feature ``observation.images.<name>``) -> image topic."""
    reference: str = "front"
    """The camera whose messages set the frame times."""
    state_topic: str = topics.JOINT_STATES
    action_topic: str = topics.LEADER_JOINT_STATES
    joints: list[str] | None = None
    """State joints in dataset order; default: the names of the first state message."""
    action_joints: list[str] | None = None
    """Names in the action source that give the action dimensions (same order as ``joints``); default ``joints``."""
    time_source: str = "receive"
    """``receive``: bag (receive) time of every message; ``header``: ``header.stamp`` where a message has one."""
    state_max_age: float = 0.1
    action_max_age: float = 0.1
    camera_max_age: float = 0.1
    fps: int | None = None
    """Dataset frame rate; default: the reference camera's median rate, rounded."""
    units: JointUnits = field(default_factory=JointUnits)
    episode_topic: str | None = None
    """Split bags into episodes by this topic (see :mod:`rynnvla_ros.dataset.episodes`); None: one per bag."""
    task: str | None = None
    task_topic: str | None = None
    image_size: tuple[int, int] | None = None
    use_videos: bool = True
    vcodec: str | None = None
    robot_type: str | None = "so100"
    repo_id: str | None = None

    def validate(self) -> None:
        """ValueError for inconsistent settings."""
        if self.reference not in self.cameras:
            raise ValueError(f"reference camera {self.reference!r} is not one of the cameras {list(self.cameras)}")
        if self.time_source not in TIME_SOURCES:
            raise ValueError(f"time_source must be one of {TIME_SOURCES}, got {self.time_source!r}")
        for name in ("state_max_age", "action_max_age", "camera_max_age"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.joints is not None and self.action_joints is not None and len(self.joints) != len(self.action_joints):
            raise ValueError("action_joints must name as many joints as joints")
        if self.task is None and self.task_topic is None and self.episode_topic is None:
            raise ValueError("give a task text (--task) or a task topic (--task-topic)")


@dataclass
class TopicStats:
    """Counts of one topic in one bag."""

    msgtype: str
    messages: int = 0
    corrupt: int = 0
    no_header_stamp: int = 0
    delays_ns: list[int] = field(default_factory=list)
    first_error: str | None = None

    def to_dict(self) -> dict:
        """Report form (receive minus header delay in ms where the messages have headers)."""
        d: dict = {"type": self.msgtype, "messages": self.messages, "corrupt": self.corrupt}
        if self.first_error:
            d["first_error"] = self.first_error
        if self.no_header_stamp:
            d["no_header_stamp"] = self.no_header_stamp
        if self.delays_ns:
            delays = np.asarray(self.delays_ns, dtype=np.float64) / 1e6
            d["receive_minus_header_ms"] = {"median": float(np.median(delays)), "max": float(delays.max())}
        return d


@dataclass
class VectorSeries:
    """Usable messages of a vector topic: times, bag-order indices and values (N, D) in message units."""

    times: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    def stream(self) -> Stream:
        return Stream.of(self.times, self.indices)

    def array(self, dim: int) -> np.ndarray:
        """Values by bag-order index lookup table: row ``k`` holds message ``k`` (NaN for unusable ones)."""
        size = max(self.indices, default=-1) + 1
        out = np.full((size, dim), np.nan)
        for k, v in zip(self.indices, self.values, strict=True):
            out[k] = v
        return out


@dataclass
class BagIndex:
    """What the first pass learned about one bag."""

    path: Path
    start_ns: int
    end_ns: int
    connections: list
    topics: dict[str, TopicStats]
    images: dict[str, VectorSeries]
    """Camera name -> times and indices of valid image messages (no values)."""
    image_shapes: dict[str, tuple[int, int] | None]
    """(height, width) of the first raw image per camera; None for compressed images."""
    state: VectorSeries
    action: VectorSeries
    joints: list[str]
    action_names: list[str]
    action_joint_space: bool
    action_delta: bool
    events: list[tuple[int, str, str | int | None]] = field(default_factory=list)
    episode_warnings: list[str] = field(default_factory=list)
    tasks: VectorSeries = field(default_factory=VectorSeries)
    task_texts: dict[int, str] = field(default_factory=dict)


def open_reader(path: Path) -> Reader:
    """An open rosbags reader, or BagError naming the file."""
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several types for unreadable files
        raise BagError(f"{path}: cannot open bag: {type(exc).__name__}: {exc}") from exc
    return reader


def _time(config: BagConfig, receive_ns: int, msg: object, stats: TopicStats) -> int:
    stamp = extract.header_ns(msg)
    if stamp is not None:
        stats.delays_ns.append(receive_ns - stamp)
    elif hasattr(msg, "header"):
        stats.no_header_stamp += 1
    return stamp if config.time_source == "header" and stamp is not None else receive_ns


def _required_topics(config: BagConfig) -> dict[str, tuple[str, ...]]:
    wanted = {topic: extract.IMAGE_TYPES for topic in config.cameras.values()}
    wanted[config.state_topic] = (extract.JOINT_STATE,)
    wanted[config.action_topic] = extract.VECTOR_TYPES
    if config.episode_topic:
        wanted[config.episode_topic] = EPISODE_TYPES
    return wanted


def index_bag(path: Path, config: BagConfig, joints: list[str] | None) -> BagIndex:
    """First pass over ``path``; ``joints`` fixes the state order (None: names of the first state message)."""
    reader = open_reader(path)
    try:
        return _index(reader, path, config, joints)
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f"{path}: cannot read bag: {type(exc).__name__}: {exc}") from exc
    finally:
        reader.close()


def _first_joint_names(reader: Reader, store: object, connections: list) -> list[str]:
    """Names of the first well-formed JointState on the state topic."""
    for conn, _, raw in reader.messages(connections=connections):
        try:
            names = list(extract.read_vector(store.deserialize_cdr(raw, conn.msgtype), conn.msgtype).names or [])
        except Exception:  # malformed: try the next one
            continue
        if names:
            return names
    raise BagError(f"{reader.path}: no JointState with joint names on the state topic")


def _index(reader: Reader, path: Path, config: BagConfig, joints: list[str] | None) -> BagIndex:
    wanted = _required_topics(config)
    optional = {config.task_topic: (STRING,)} if config.task_topic else {}
    available = {c.topic: c.msgtype for c in reader.connections}
    missing = [t for t in wanted if t not in available]
    if missing:
        raise BagError(f"{path}: missing topics {missing}; the bag has {sorted(available)}")
    for topic, types in {**wanted, **optional}.items():
        if topic in available and available[topic] not in types:
            raise BagError(f"{path}: topic {topic} has type {available[topic]}, expected one of {list(types)}")
    connections = [c for c in reader.connections if c.topic in wanted or c.topic in optional]
    store = typestore_for(connections)
    stats = {t: TopicStats(available[t]) for t in {*wanted, *optional} if t in available}
    camera_of = {topic: name for name, topic in config.cameras.items()}
    images = {name: VectorSeries() for name in config.cameras}
    shapes: dict[str, tuple[int, int] | None] = {}
    state, action, tasks = VectorSeries(), VectorSeries(), VectorSeries()
    task_texts: dict[int, str] = {}
    events: list[tuple[int, str, str | int | None]] = []
    action_kind: tuple[list[str], bool, bool] | None = None
    counters: dict[str, int] = defaultdict(int)
    if joints is None:
        joints = _first_joint_names(reader, store, [c for c in connections if c.topic == config.state_topic])

    for conn, receive_ns, raw in reader.messages(connections=connections):
        topic = conn.topic
        k = counters[topic]
        counters[topic] += 1
        ts = stats[topic]
        ts.messages += 1
        try:
            msg = store.deserialize_cdr(raw, conn.msgtype)
            t = _time(config, receive_ns, msg, ts)
            if topic in camera_of:
                shape = extract.check_image(msg, conn.msgtype)
                shapes.setdefault(camera_of[topic], shape)
                images[camera_of[topic]].times.append(t)
                images[camera_of[topic]].indices.append(k)
            elif topic == config.state_topic:
                vec = extract.read_vector(msg, conn.msgtype)
                state.values.append(extract.select(vec, joints))
                state.times.append(t)
                state.indices.append(k)
            elif topic == config.action_topic:
                vec = extract.read_vector(msg, conn.msgtype)
                if vec.joint_space:
                    values, names = extract.select(vec, config.action_joints or joints), joints
                else:
                    names, values = list(vec.names or [f"a{i}" for i in range(vec.values.size)]), vec.values
                kind = (names, vec.joint_space, vec.delta)
                if action_kind is None:
                    action_kind = kind
                elif kind != action_kind:
                    raise extract.MessageError(f"action layout changed from {action_kind} to {kind}")
                action.values.append(values)
                action.times.append(t)
                action.indices.append(k)
            elif topic == config.episode_topic:
                events.append((receive_ns, *parse_command(msg, conn.msgtype)))
            elif topic == config.task_topic:
                task_texts[k] = str(msg.data).strip()
                tasks.times.append(receive_ns)
                tasks.indices.append(k)
        except Exception as exc:  # a malformed message is counted, the bag goes on
            ts.corrupt += 1
            ts.first_error = ts.first_error or f"message {k}: {type(exc).__name__}: {exc}"

    for topic, usable in (
        (config.state_topic, state.times),
        (config.action_topic, action.times),
        (config.cameras[config.reference], images[config.reference].times),
    ):
        if not usable:
            why = stats[topic].first_error or "the topic has no messages"
            raise BagError(f"{path}: no usable message on {topic} ({stats[topic].messages} messages; {why})")
    return BagIndex(
        path=path,
        start_ns=int(reader.start_time),
        end_ns=int(reader.end_time),
        connections=connections,
        topics=stats,
        images=images,
        image_shapes=shapes,
        state=state,
        action=action,
        joints=list(joints),
        action_names=action_kind[0],
        action_joint_space=action_kind[1],
        action_delta=action_kind[2],
        events=sorted(events, key=lambda e: e[0]),
        tasks=tasks,
        task_texts=task_texts,
    )
