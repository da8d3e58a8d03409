"""One rosbag2 bag (mcap or sqlite3) written with ``rosbags`` on a writer thread behind a bounded queue.

:meth:`BagWriter.write` never blocks: it appends serialized (CDR) bytes to a queue bounded by message count and
bytes, or drops the message and counts the drop when the queue is full, so a subscription callback never waits for
the disk. The writer thread adds each topic's connection (message definition, type hash and the publishers' offered
QoS) when its first message arrives. A failed write (disk full, file size limit, I/O error) stops the writing with a
clear :attr:`BagWriter.error`; so does free space falling below ``min_free_bytes``, which is checked while writing so
that the bag can still be closed (summary and ``metadata.yaml`` written) and read. :meth:`BagWriter.close` drains
the queue and closes the bag; it is idempotent.
"""

from __future__ import annotations

import errno
import shutil
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from rynnvla_ros.dataset.types import base_typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
INFINITE_NS = 2**63 - 1
"""rmw's infinite duration (deadline, lifespan, lease), in nanoseconds."""

_OS_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EFBIG: "the file size limit was reached",
    errno.EACCES: "permission denied: check the directory's owner and mode",
    errno.EPERM: "operation not permitted: choose a directory this user may write",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "it exists already",
    errno.EIO: "input/output error on the device",
}


class RecordingError(RuntimeError):
    """A bag that cannot be created or written; the message says which and why."""


def describe_os_error(exc: BaseException, what: str) -> str:
    """``"<what>: <reason>"`` with a plain reason for the usual file-system errors."""
    if isinstance(exc, OSError) and exc.errno in _OS_HINTS:
        return f"{what}: {_OS_HINTS[exc.errno]} ({exc.strerror or exc})"
    return f"{what}: {type(exc).__name__}: {exc}"


def _time(ns: int) -> QosTime:
    return QosTime(int(ns) // 1_000_000_000, int(ns) % 1_000_000_000)


def make_qos(
    reliability: int = 1,
    durability: int = 2,
    history: int = 1,
    depth: int = 10,
    deadline_ns: int = INFINITE_NS,
    lifespan_ns: int = INFINITE_NS,
    liveliness: int = 1,
    lease_ns: int = INFINITE_NS,
    avoid_ros_namespace_conventions: bool = False,
) -> Qos:
    """A publisher's offered QoS as rosbag2 records it; the enum values are rmw's (and rclpy's).

    Defaults: reliable, volatile, keep last 10, automatic liveliness, infinite durations.
    """
    return Qos(
        history=QosHistory(history),
        depth=int(depth),
        reliability=QosReliability(reliability),
        durability=QosDurability(durability),
        deadline=_time(deadline_ns),
        lifespan=_time(lifespan_ns),
        liveliness=QosLiveliness(liveliness),
        liveliness_lease_duration=_time(lease_ns),
        avoid_ros_namespace_conventions=bool(avoid_ros_namespace_conventions),
    )


LATCHED_QOS = make_qos(durability=1, depth=1)
"""Reliable, transient local, depth 1: the recorder's episode and task publishers."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic of the bag: its name, message type (``pkg/msg/Type``) and the QoS its publishers offer."""

    topic: str
    msgtype: str
    qos: tuple[Qos, ...] = ()


@dataclass
class TopicCounters:
    """What happened to one topic's messages."""

    queued: int = 0
    written: int = 0
    dropped: int = 0
    """Refused because the queue was full."""
    lost: int = 0
    """Queued or offered after the writer failed, never written."""
    bytes: int = 0

    @property
    def unwritten(self) -> int:
        """Messages that will never be in the bag: dropped or lost."""
        return self.dropped + self.lost


@dataclass
class WriteSummary:
    """A closed bag: where it is, what it holds, and the first error if writing failed."""

    path: Path
    counters: dict[str, TopicCounters] = field(default_factory=dict)
    error: str | None = None
    readable: bool = True
    """False when closing failed too (the bag may lack its summary or metadata.yaml)."""

    @property
    def written(self) -> int:
        return sum(c.written for c in self.counters.values())

    @property
    def dropped(self) -> int:
        return sum(c.unwritten for c in self.counters.values())

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.counters.values())


def disk_free(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


class BagWriter:
    """Writes one bag; see the module docstring. Use :meth:`open`, then :meth:`start` (or :meth:`open_and_start`)."""

    def __init__(
        self,
        path: Path,
        *,
        storage: str = "mcap",
        max_queue: int = 1000,
        max_queue_bytes: int = 256 * 2**20,
        min_free_bytes: int = 0,
        check_every_bytes: int = 16 * 2**20,
        typestore: Typestore | None = None,
        metadata: Mapping[str, str] | None = None,
        free_space: Callable[[Path], int] = disk_free,
    ) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        if max_queue < 1 or max_queue_bytes < 1:
            raise ValueError("max_queue and max_queue_bytes must be >= 1")
        self.path = Path(path)
        self.storage = storage
        self.max_queue, self.max_queue_bytes = int(max_queue), int(max_queue_bytes)
        self.min_free_bytes, self.check_every_bytes = int(min_free_bytes), max(1, int(check_every_bytes))
        self.store = typestore or base_typestore()
        self.metadata = dict(metadata or {})
        self.free_space = free_space
        self.counters: dict[str, TopicCounters] = {}
        self.error: str | None = None
        self._specs: dict[str, TopicSpec] = {}
        self._connections: dict[str, object] = {}
        self._writer: Writer | None = None
        self._queue: deque[tuple[str, int, bytes]] = deque()
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._closing = False
        self._opened = threading.Event()
        self._go = threading.Event()
        self._open_error: str | None = None
        self._readable = False
        self._thread: threading.Thread | None = None
        self._since_check = 0
        self._summary: WriteSummary | None = None

    # ------------------------------------------------------------------------------------------ set-up
    def open(self) -> None:
        """Create the bag directory and file; RecordingError naming the path and the reason when that fails.

        The bag is opened, written and closed on the writer thread (sqlite3 connections belong to one thread);
        messages wait in the queue until :meth:`start`.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.path} was opened already")
        if self.path.exists():
            raise RecordingError(f"cannot create the bag {self.path}: it exists already")
        if self.min_free_bytes:
            free = self._free()
            if free is not None and free < self.min_free_bytes:
                raise RecordingError(
                    f"cannot create the bag {self.path}: only {free / 2**20:.0f} MB free, below the "
                    f"{self.min_free_bytes / 2**20:.0f} MB kept free (min_free_mb)"
                )
        self._thread = threading.Thread(target=self._run, name=f"bag-writer-{self.path.name}", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            raise RecordingError(self._open_error)

    def start(self) -> None:
        """Let the writer thread write (messages queued before are written first)."""
        if self._thread is None:
            raise RuntimeError("open() the bag first")
        self._go.set()

    def open_and_start(self) -> BagWriter:
        """:meth:`open` and :meth:`start`; returns self."""
        self.open()
        self.start()
        return self

    def add_topic(self, spec: TopicSpec) -> None:
        """Declare a topic (before its first message); RecordingError when its type has no known definition."""
        if spec.msgtype not in self.store.types:
            raise RecordingError(f"cannot record {spec.topic}: no message definition for {spec.msgtype}")
        with self._cond:
            known = self._specs.get(spec.topic)
            if known is not None and known.msgtype != spec.msgtype:
                raise RecordingError(f"{spec.topic} is {known.msgtype} in this bag, cannot add it as {spec.msgtype}")
            self._specs[spec.topic] = spec
            self.counters.setdefault(spec.topic, TopicCounters())

    def has_topic(self, topic: str) -> bool:
        """Whether ``topic`` was declared with :meth:`add_topic`."""
        return topic in self._specs

    # ------------------------------------------------------------------------------------------ writing
    def write(self, topic: str, time_ns: int, data: bytes, force: bool = False) -> bool:
        """Queue one serialized message (never blocks); False when it was dropped (queue full, failed or closed).

        ``force`` queues it even when the queue is full (for the few messages that must not be lost, such as the
        episode's closing marker).
        """
        size = len(data)
        with self._cond:
            counters = self.counters.get(topic)
            if counters is None:
                raise KeyError(f"{topic} was not declared with add_topic()")
            if self.error is not None or self._closing:
                counters.lost += 1
                return False
            full = len(self._queue) >= self.max_queue or self._queued_bytes + size > self.max_queue_bytes
            if full and not force:
                counters.dropped += 1
                return False
            self._queue.append((topic, int(time_ns), data))
            self._queued_bytes += size
            counters.queued += 1
            self._cond.notify()
        return True

    def serialize_and_write(self, topic: str, time_ns: int, msg: object, force: bool = False) -> bool:
        """Serialize a rosbags message object with the writer's typestore and :meth:`write` it."""
        return self.write(topic, time_ns, bytes(self.store.serialize_cdr(msg, self._specs[topic].msgtype)), force)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has returned."""
        return self._summary is not None

    @property
    def queue_depth(self) -> int:
        """Messages waiting for the writer thread."""
        return len(self._queue)

    @property
    def queue_bytes(self) -> int:
        """Bytes waiting for the writer thread."""
        return self._queued_bytes

    def _run(self) -> None:
        writer = Writer(self.path, version=9, storage_plugin=STORAGES[self.storage])
        try:
            writer.open()
            for key, value in self.metadata.items():
                writer.set_custom_data(key, str(value))
        except Exception as exc:
            self._open_error = describe_os_error(exc, f"cannot create the bag {self.path}")
            self._opened.set()
            return
        self._writer = writer
        self._opened.set()
        self._go.wait()
        try:
            self._write_queued()
        finally:
            try:
                writer.close()
                self._readable = True
            except Exception as exc:  # the summary could not be written either: say so
                message = describe_os_error(exc, f"closing {self.path} failed")
                with self._cond:
                    self.error = f"{self.error}; {message}" if self.error else message

    def _write_queued(self) -> None:
        """Write queued messages until closing (queue empty) or the first failure."""
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                topic, time_ns, data = self._queue.popleft()
                self._queued_bytes -= len(data)
            counters = self.counters[topic]
            try:
                connection = self._connections.get(topic) or self._connect(topic)
                self._writer.write(connection, time_ns, data)
            except Exception as exc:  # disk full, size limit, I/O error: stop writing, keep the reason
                self._fail(describe_os_error(exc, f"writing {self.path} failed"), topic=topic)
                return
            counters.written += 1
            counters.bytes += len(data)
            self._since_check += len(data)
            if self.min_free_bytes and self._since_check >= self.check_every_bytes:
                self._since_check = 0
                free = self._free()
                if free is not None and free < self.min_free_bytes:
                    self._fail(
                        f"stopped writing {self.path}: only {free / 2**20:.0f} MB free, below the "
                        f"{self.min_free_bytes / 2**20:.0f} MB kept free (min_free_mb); the bag is kept"
                    )
                    return

    def _connect(self, topic: str) -> object:
        spec = self._specs[topic]
        connection = self._writer.add_connection(
            topic, spec.msgtype, typestore=self.store, offered_qos_profiles=list(spec.qos)
        )
        self._connections[topic] = connection
        return connection

    def _fail(self, message: str, topic: str | None = None) -> None:
        """Stop writing with ``message``; what is queued (and the message of ``topic`` being written) is lost."""
        with self._cond:
            self.error = self.error or message
            if topic is not None:
                self.counters[topic].lost += 1
            while self._queue:
                t, _, data = self._queue.popleft()
                self._queued_bytes -= len(data)
                self.counters[t].lost += 1

    def _free(self) -> int | None:
        try:
            return int(self.free_space(self.path))
        except OSError:
            return None

    # ------------------------------------------------------------------------------------------ closing
    def close(self, timeout: float = 60.0) -> WriteSummary:
        """Write what is queued, close the bag (summary and metadata.yaml) and return what it holds; idempotent."""
        if self._summary is not None:
            return self._summary
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._go.set()  # opened but never started: write what was queued
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._fail(f"writing {self.path} did not finish within {timeout:g} s; the bag may be incomplete")
                self._thread.join(timeout)
        readable = self._readable and not (self._thread is not None and self._thread.is_alive())
        self._summary = WriteSummary(self.path, dict(self.counters), self.error, readable)
        return self._summary
