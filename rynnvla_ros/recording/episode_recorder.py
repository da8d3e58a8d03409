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
from rynnvla_ros.dataset.episodes import STRING
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
            drops = ", ".join(f"{t} {c.unwritten}" for t, c in s.counters.items() if c.unwritten)
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


class Episodes:
    """What both recording backends share: numbered episodes, one bag each, and deleting discarded bags.

    Subclasses implement ``start`` and ``_finish(command)`` (``"stop"`` or ``"discard"``).
    """

    def __init__(self, config: RecorderConfig, clock: Callable[[], int]) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir).expanduser()
        self.clock = clock
        self.episodes = 0
        self._info: EpisodeInfo | None = None

    @property
    def recording(self) -> bool:
        return self._info is not None

    @property
    def current(self) -> EpisodeInfo | None:
        """The episode being recorded, if any."""
        return self._info

    def stop(self) -> EpisodeResult:
        """End the episode and keep its bag (closed, ``stop`` last); RecordingError when none is recording."""
        return self._finish("stop")

    def discard(self) -> EpisodeResult:
        """End the episode and delete its bag; RecordingError when none is recording."""
        return self._finish("discard")

    def close(self) -> EpisodeResult | None:
        """Stop the episode being recorded, if any (shutdown)."""
        return self._finish("stop") if self.recording else None

    def _finish(self, command: str) -> EpisodeResult:
        raise NotImplementedError

    def _next_episode(self, task: str) -> EpisodeInfo:
        """The episode a start with ``task`` opens (task stripped, a new bag path in output_dir, which is created,
        starting now); RecordingError when the task is empty, one is recording or output_dir cannot be created."""
        task = task.strip()
        if not task:
            raise RecordingError("no task text: give one to start the episode (or set the recorder's task)")
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
        return EpisodeInfo(self.episodes, task, path, start_ns)

    @staticmethod
    def _delete_discarded(result: EpisodeResult) -> None:
        """Delete a discarded episode's bag; when that fails the bag is kept and the result says why."""
        path = result.info.path
        try:
            if path.exists():
                shutil.rmtree(path)
        except OSError as exc:
            result.kept = True
            result.notes.append(describe_os_error(exc, f"could not delete the discarded bag {path}"))


class EpisodeRecorder(Episodes):
    """Starts, stops and discards episodes written in this process; see the module docstring. Thread-safe."""

    def __init__(
        self,
        config: RecorderConfig,
        *,
        typestore: Typestore | None = None,
        clock: Callable[[], int] = time.time_ns,
        free_space: Callable[[Path], int] = disk_free,
    ) -> None:
        super().__init__(config, clock)
        self.store = typestore or base_typestore()
        self.free_space = free_space
        self.topics: dict[str, TopicSpec] = {}
        self.ignored_before_start = 0
        self._writer: BagWriter | None = None
        self._lock = threading.Lock()

    @property
    def marker_topics(self) -> tuple[str, str]:
        """The episode and task topics, which the recorder writes itself."""
        return self.config.episode_topic, self.config.task_topic

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
        with self._lock:
            info = self._next_episode(task)
            writer = BagWriter(
                info.path,
                storage=self.config.storage,
                max_queue=self.config.max_queue,
                max_queue_bytes=int(self.config.max_queue_mb * MB),
                min_free_bytes=int(self.config.min_free_mb * MB),
                typestore=self.store,
                metadata={
                    "rynnvla.task": info.task,
                    "rynnvla.episode": str(info.index),
                    "rynnvla.episode_topic": self.config.episode_topic,
                    "rynnvla.task_topic": self.config.task_topic,
                },
                free_space=self.free_space,
            )
            writer.open()
            String = self.store.types[STRING]
            for topic in self.marker_topics:
                writer.add_topic(TopicSpec(topic, STRING, (LATCHED_QOS,)))
            writer.serialize_and_write(self.config.task_topic, info.start_ns, String(data=info.task), force=True)
            start = String(data=f"start:{info.task}")
            writer.serialize_and_write(self.config.episode_topic, info.start_ns, start, force=True)
            for spec in self.topics.values():
                writer.add_topic(spec)
            writer.start()
            self._info, self._writer = info, writer
            self.episodes += 1
            self.ignored_before_start = 0
            return info

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

    def _finish(self, command: str) -> EpisodeResult:
        """Write ``command`` (stop or discard) last and close the bag; a discarded bag is deleted."""
        with self._lock:
            writer, info = self._writer, self._info
            if writer is None:
                raise RecordingError(f"no episode is recording (nothing to {command})")
            self._writer, self._info = None, None
            end_ns = max(self.clock(), info.start_ns)
            ignored = self.ignored_before_start
            marker = self.store.types[STRING](data=command)
            writer.serialize_and_write(self.config.episode_topic, end_ns, marker, force=True)
        summary = writer.close()
        result = EpisodeResult(info, end_ns, summary, kept=command == "stop", ignored_before_start=ignored)
        if command == "discard":
            self._delete_discarded(result)
        return result
