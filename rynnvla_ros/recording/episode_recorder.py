"""Episodes of a demonstration session, one rosbag2 bag each, written by :class:`~.bag_writer.BagWriter`.

``start(task)`` creates ``<output_dir>/<prefix>_<YYYYmmdd_HHMMSS>_<NNN>`` and writes, as its first messages, the
task text on the task topic and ``start:<task>`` on the episode topic (``std_msgs/String``, the boundary format of
:mod:`rynnvla_ros.dataset.episodes`); ``stop()`` writes ``stop`` last and closes the bag. So
``rynnvla-convert bags DIR --split-episodes`` finds each episode and its task in the bag itself (``--task-topic``
works as well), and the bag's ``metadata.yaml`` carries the task under ``custom_data``. ``discard()`` closes the bag
and deletes it, so no conversion can pick it up.

:meth:`EpisodeRecorder.offer` takes serialized messages from subscription callbacks; messages received before the
episode started, or while none is recording, are ignored.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.typesys.store import Typestore

from rynnvla_ros import topics
from rynnvla_ros.dataset.types import base_typestore
from rynnvla_ros.recording.bag_writer import (
    LATCHED_QOS,
    STORAGES,
    BagWriter,
    RecordingError,
    TopicSpec,
    WriteSummary,
    describe_os_error,
    disk_free,
)

STRING = "std_msgs/msg/String"
MB = 2**20


@dataclass(frozen=True)
class RecorderConfig:
    """Where and how episodes are written (the recorder node's parameters of the same names)."""

    output_dir: Path
    storage: str = "mcap"
    max_queue: int = 1000
    """Messages waiting for the disk before new ones are dropped."""
    max_queue_mb: float = 256.0
    """Bytes (MB) waiting for the disk before new messages are dropped."""
    min_free_mb: float = 200.0
    """Free space kept on the disk: no episode starts below it, and writing stops (bag kept, readable) at it."""
    prefix: str = "episode"
    episode_topic: str = topics.EPISODE
    task_topic: str = topics.TASK

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {self.storage!r}")
        if self.max_queue < 1 or self.max_queue_mb <= 0 or self.min_free_mb < 0:
            raise ValueError("max_queue must be >= 1, max_queue_mb > 0 and min_free_mb >= 0")
        if not self.prefix or "/" in self.prefix:
            raise ValueError(f"prefix must be a non-empty file name part, got {self.prefix!r}")


@dataclass
class EpisodeInfo:
    """The episode being recorded."""

    index: int
    task: str
    path: Path
    start_ns: int


@dataclass
class EpisodeResult:
    """A finished episode: kept (stopped) or deleted (discarded)."""

    info: EpisodeInfo
    end_ns: int
    summary: WriteSummary
    kept: bool
    ignored_before_start: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return (self.end_ns - self.info.start_ns) / 1e9

    def message(self) -> str:
        """One line for the service response and the log."""
        s = self.summary
        what = f"episode {self.info.index} ({self.info.task!r}, {self.duration:.1f} s)"
        if not self.kept:
            text = f"{what} discarded: {self.info.path} deleted"
        else:
            text = f"{what} saved to {self.info.path}: {s.written} messages, {s.bytes / MB:.1f} MB"
            if not s.readable:
                text += " (the bag could not be closed properly and may be unreadable)"
        if s.dropped:
            drops = ", ".join(f"{t} {c.dropped + c.lost}" for t, c in s.counters.items() if c.dropped + c.lost)
            text += f"; {s.dropped} messages dropped ({drops})"
        if s.error:
            text += f"; error: {s.error}"
        return "; ".join([text, *self.notes])


def bag_path(output_dir: Path, prefix: str, index: int, start_ns: int) -> Path:
    """``<output_dir>/<prefix>_<YYYYmmdd_HHMMSS>_<index:03d>`` (local time), with a suffix if that exists."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(start_ns / 1e9))
    base = f"{prefix}_{stamp}_{index:03d}"
    path, n = Path(output_dir) / base, 1
    while path.exists():
        path, n = Path(output_dir) / f"{base}_{n}", n + 1
    return path


class EpisodeRecorder:
    """Starts, stops and discards episodes; see the module docstring. Thread-safe."""

    def __init__(
        self,
        config: RecorderConfig,
        *,
        typestore: Typestore | None = None,
        clock: Callable[[], int] = time.time_ns,
        free_space: Callable[[Path], int] = disk_free,
    ) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir).expanduser()
        self.store = typestore or base_typestore()
        self.clock, self.free_space = clock, free_space
        self.topics: dict[str, TopicSpec] = {}
        self.episodes = 0
        self.ignored_before_start = 0
        self._writer: BagWriter | None = None
        self._info: EpisodeInfo | None = None
        self._lock = threading.Lock()

    @property
    def marker_topics(self) -> tuple[str, str]:
        """The episode and task topics, which the recorder writes itself."""
        return self.config.episode_topic, self.config.task_topic

    @property
    def recording(self) -> bool:
        return self._writer is not None

    @property
    def current(self) -> EpisodeInfo | None:
        """The episode being recorded, if any."""
        return self._info

    @property
    def writer(self) -> BagWriter | None:
        """The open episode's writer (for its counters and queue), if any."""
        return self._writer

    def set_topic(self, spec: TopicSpec) -> None:
        """Record ``spec.topic`` from now on (also in the episode being recorded); RecordingError for unknown types."""
        if spec.topic in self.marker_topics:
            raise RecordingError(f"{spec.topic} is written by the recorder itself")
        if spec.msgtype not in self.store.types:
            raise RecordingError(f"cannot record {spec.topic}: no message definition for {spec.msgtype}")
        with self._lock:
            self.topics[spec.topic] = spec
            if self._writer is not None:
                self._writer.add_topic(spec)

    # ------------------------------------------------------------------------------------------ episodes
    def start(self, task: str) -> EpisodeInfo:
        """Open a new episode's bag with ``task``; RecordingError when one is open, the task is empty or the bag
        cannot be created."""
        task = task.strip()
        if not task:
            raise RecordingError("no task text: give one to start the episode (or set the recorder's task)")
        with self._lock:
            if self._info is not None:
                raise RecordingError(
                    f"episode {self._info.index} is already recording to {self._info.path}; stop or discard it first"
                )
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RecordingError(describe_os_error(exc, f"cannot create output_dir {self.output_dir}")) from exc
            start_ns = self.clock()
            path = bag_path(self.output_dir, self.config.prefix, self.episodes, start_ns)
            writer = BagWriter(
                path,
                storage=self.config.storage,
                max_queue=self.config.max_queue,
                max_queue_bytes=int(self.config.max_queue_mb * MB),
                min_free_bytes=int(self.config.min_free_mb * MB),
                typestore=self.store,
                metadata={
                    "rynnvla.task": task,
                    "rynnvla.episode": str(self.episodes),
                    "rynnvla.episode_topic": self.config.episode_topic,
                    "rynnvla.task_topic": self.config.task_topic,
                },
                free_space=self.free_space,
            )
            writer.open()
            String = self.store.types[STRING]
            for topic in self.marker_topics:
                writer.add_topic(TopicSpec(topic, STRING, (LATCHED_QOS,)))
            writer.serialize_and_write(self.config.task_topic, start_ns, String(data=task), force=True)
            writer.serialize_and_write(self.config.episode_topic, start_ns, String(data=f"start:{task}"), force=True)
            for spec in self.topics.values():
                writer.add_topic(spec)
            writer.start()
            self._info = EpisodeInfo(self.episodes, task, path, start_ns)
            self._writer = writer
            self.episodes += 1
            self.ignored_before_start = 0
            return self._info

    def offer(self, topic: str, time_ns: int, data: bytes) -> bool:
        """Queue a message of a topic given to :meth:`set_topic` if an episode is recording and it was received after
        the episode started; False otherwise (or when the queue dropped it)."""
        with self._lock:
            writer, info = self._writer, self._info
            if writer is None or not writer.has_topic(topic):
                return False
            if time_ns < info.start_ns:
                self.ignored_before_start += 1
                return False
            return writer.write(topic, time_ns, data)

    def stop(self) -> EpisodeResult:
        """Write ``stop`` and close the episode's bag (kept); RecordingError when none is recording."""
        return self._finish("stop")

    def discard(self) -> EpisodeResult:
        """Close the episode's bag and delete it; RecordingError when none is recording."""
        return self._finish("discard")

    def close(self) -> EpisodeResult | None:
        """Stop the episode being recorded, if any (shutdown)."""
        return self._finish("stop") if self.recording else None

    def _finish(self, command: str) -> EpisodeResult:
        with self._lock:
            writer, info = self._writer, self._info
            if writer is None:
                raise RecordingError(f"no episode is recording (nothing to {command})")
            self._writer, self._info = None, None
            end_ns = max(self.clock(), info.start_ns)
            ignored = self.ignored_before_start
            marker = self.store.types[STRING](data=command)
            writer.write(self.config.episode_topic, end_ns, bytes(self.store.serialize_cdr(marker, STRING)), force=True)
        summary = writer.close()
        result = EpisodeResult(info, end_ns, summary, kept=command == "stop", ignored_before_start=ignored)
        if command == "discard":
            try:
                shutil.rmtree(info.path)
            except OSError as exc:
                result.kept = True
                result.notes.append(describe_os_error(exc, f"could not delete the discarded bag {info.path}"))
        return result
