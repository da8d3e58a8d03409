"""``recorder`` node: records demonstration episodes into rosbag2 bags, one bag per episode.

Two backends (parameter ``backend``):

``rosbags``
    In this process: the configured topics are discovered on the graph, subscribed raw (serialized bytes, never
    deserialized) with the QoS their publishers offer, and handed to
    :class:`~rynnvla_ros.recording.episode_recorder.EpisodeRecorder`, which writes them on its own thread behind a
    bounded queue (a full queue drops and counts, the executor never waits for the disk).
``ros2bag``
    ``ros2 bag record`` in a subprocess per episode (:mod:`rynnvla_ros.recording.ros2bag`); needs a full ROS 2
    install. ``auto`` (default) uses it when ``ros2 bag`` is available, else ``rosbags``.

Either way a bag holds the task on the task topic and ``start:<task>`` ... ``stop`` on the episode topic, which is
what ``rynnvla-convert bags --split-episodes`` reads; discarded episodes are deleted. On shutdown (Ctrl-C, SIGTERM)
an episode being recorded is stopped and its bag closed.

Topics:
  ~/episode   std_msgs/String  out, transient local: start:<task>, stop or discard at each boundary (/recorder/episode)
  ~/task      std_msgs/String  out at each start, and in: the task used when a start request has none (/recorder/task)
  /diagnostics diagnostic_msgs/DiagnosticArray  out: state, episode, messages/s, counts and drops per topic, queue
              depth and size, bytes written, free disk space, messages that never reached the recorder (gaps in
              each publisher's sequence numbers; the middleware's lost-sample count)
  the topics of parameter ``topics``: in (recorded)

Services:
  ~/start_episode    rynnvla_ros/StartEpisode  start an episode with the request's task (else the current task)
  ~/stop_episode     std_srvs/Trigger          stop it and keep the bag (the message says where and what it holds)
  ~/discard_episode  std_srvs/Trigger          stop it and delete the bag

Parameters:
  output_dir (str, "~/rynnvla_bags")  folder of the episode bags (<prefix>_<YYYYmmdd_HHMMSS>_<NNN>)
  topics (str[], topics.RECORDED_TOPICS)  topics to record
  task (str, "")                 task used when neither the request nor the task topic gives one
  backend (str, "auto")          auto, rosbags or ros2bag
  storage (str, "mcap")          mcap or sqlite3
  prefix (str, "episode")        bag name prefix
  max_queue (int, 1000)          messages waiting for the disk before new ones are dropped (rosbags)
  max_queue_mb (float, 256.0)    MB waiting for the disk before new messages are dropped (rosbags)
  min_free_mb (float, 500.0)     free disk space kept: no episode starts below it, and an episode is stopped (bag
                                 kept and readable) when the disk fills up to it (rosbags)
  queue_depth (int, 200)         history depth of each recording subscription: messages the middleware holds while
                                 the executor is behind (a stopping episode takes them all first)
  discovery_period (float, 0.5)  s between looks for the configured topics on the graph (rosbags)
  diagnostics_period (float, 1.0) s between /diagnostics messages and checks of the writer
  startup_timeout (float, 15.0)  s for ``ros2 bag record`` to subscribe (ros2bag)
  stop_grace (float, 0.5)        s between publishing stop/discard and ending ``ros2 bag record`` (ros2bag)
"""

from __future__ import annotations

import functools
import importlib
import os
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rynnvla_ros import topics
from rynnvla_ros.diagnostics import diagnostic_status
from rynnvla_ros.recording.bag_writer import RecordingError, TopicSpec, disk_free, make_qos
from rynnvla_ros.recording.delivery import DeliveryTracker
from rynnvla_ros.recording.episode_recorder import EpisodeRecorder, EpisodeResult, RecorderConfig
from rynnvla_ros.recording.ros2bag import Ros2BagEpisodes, ros2bag_unavailable
from rynnvla_ros.srv import StartEpisode

BACKENDS = ("auto", "rosbags", "ros2bag")
CLOCK_MISMATCH_NS = 3600 * 1_000_000_000  # a reception time further off than this is not on the system clock
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def message_class(msgtype: str) -> type:
    """The Python class of ``pkg/msg/Type``; ImportError or AttributeError when it is not installed."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def offered_qos(info) -> object:
    """A publisher's QoS (``rclpy`` TopicEndpointInfo) as rosbag2 records it."""
    q = info.qos_profile
    return make_qos(
        reliability=int(q.reliability.value),
        durability=int(q.durability.value),
        history=int(q.history.value),
        depth=int(q.depth),
        deadline_ns=q.deadline.nanoseconds,
        lifespan_ns=q.lifespan.nanoseconds,
        liveliness=int(q.liveliness.value),
        lease_ns=q.liveliness_lease_duration.nanoseconds,
        avoid_ros_namespace_conventions=bool(q.avoid_ros_namespace_conventions),
    )


class RecorderNode(Node):
    """Thin ROS shell around the episode recorders of :mod:`rynnvla_ros.recording`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("recorder", **kwargs)
        p = {
            name: self.declare_parameter(name, value).value
            for name, value in {
                "output_dir": "~/rynnvla_bags",
                "topics": list(topics.RECORDED_TOPICS),
                "task": "",
                "backend": "auto",
                "storage": "mcap",
                "prefix": "episode",
                "max_queue": 1000,
                "max_queue_mb": 256.0,
                "min_free_mb": 500.0,
                "queue_depth": 200,
                "discovery_period": 0.5,
                "diagnostics_period": 1.0,
                "startup_timeout": 15.0,
                "stop_grace": 0.5,
            }.items()
        }
        if p["backend"] not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {p['backend']!r}")
        if p["queue_depth"] < 1 or p["discovery_period"] <= 0 or p["diagnostics_period"] <= 0:
            raise ValueError("queue_depth must be >= 1, discovery_period and diagnostics_period > 0")
        self.p = p
        self.episode_pub = self.create_publisher(String, "~/episode", LATCHED)
        self.task_pub = self.create_publisher(String, "~/task", LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", QoSProfile(depth=10))
        self.create_subscription(String, "~/task", self._on_task, LATCHED)
        self.current_task = str(p["task"]).strip()
        config = RecorderConfig(
            output_dir=Path(os.path.expanduser(p["output_dir"])),
            storage=p["storage"],
            max_queue=int(p["max_queue"]),
            max_queue_mb=float(p["max_queue_mb"]),
            min_free_mb=float(p["min_free_mb"]),
            prefix=p["prefix"],
            episode_topic=self.episode_pub.topic_name,
            task_topic=self.task_pub.topic_name,
        )
        self.wanted = list(dict.fromkeys(p["topics"]))
        self.backend = self._choose_backend(p["backend"])
        if self.backend == "ros2bag":
            recorded = list(dict.fromkeys([*self.wanted, config.episode_topic, config.task_topic]))
            self.episodes = Ros2BagEpisodes(config, recorded, startup_timeout=float(p["startup_timeout"]))
        else:
            self.episodes = EpisodeRecorder(config)
            self.create_timer(float(p["discovery_period"]), self._discover)
        self.subscriptions_by_topic: dict[str, object] = {}
        self.delivery = DeliveryTracker()
        self._last_stamp: dict[str, int] = {}
        self.dds_lost: dict[str, int] = dict.fromkeys(self.wanted, 0)
        self._missed_at_start: dict[str, int] = {}
        self._lost_at_start: dict[str, int] = {}
        self._rate_base: tuple[float, dict[str, int]] = (time.monotonic(), {})
        self._warned: set[str] = set()
        self._drops_logged = 0
        self.last_result: EpisodeResult | None = None
        self.create_service(StartEpisode, "~/start_episode", self._on_start)
        self.create_service(Trigger, "~/stop_episode", self._on_stop)
        self.create_service(Trigger, "~/discard_episode", self._on_discard)
        self.create_timer(float(p["diagnostics_period"]), self._on_diagnostics)
        self._check_output_dir(config.output_dir)
        self.get_logger().info(
            f"recorder ({self.backend}, {p['storage']}) into {config.output_dir}; topics: {', '.join(self.wanted)}; "
            f"start an episode with {self.resolve_service_name('~/start_episode')}"
        )

    # ------------------------------------------------------------------------------------------ set-up
    def _choose_backend(self, wanted: str) -> str:
        if wanted == "rosbags":
            return wanted
        why = ros2bag_unavailable()
        if wanted == "ros2bag" and why is not None:
            raise ValueError(f"backend ros2bag: {why}; use backend rosbags")
        if why is not None:
            self.get_logger().info(f"recording in-process with rosbags ({why})")
            return "rosbags"
        return "ros2bag"

    def _check_output_dir(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            writable = os.access(folder, os.W_OK)
        except OSError as exc:
            self.get_logger().error(f"output_dir {folder} cannot be created ({exc}); episodes will fail to start")
            return
        if not writable:
            self.get_logger().error(f"output_dir {folder} is not writable; episodes will fail to start")

    def _unsubscribed(self) -> list[str]:
        """Configured topics not subscribed yet (rosbags backend; the marker topics are written, not subscribed)."""
        return [t for t in self.wanted if t not in self.subscriptions_by_topic and t not in self.episodes.marker_topics]

    def _discover(self) -> None:
        """Subscribe to configured topics that appeared on the graph (rosbags backend)."""
        missing = self._unsubscribed()
        if not missing:
            return
        types = dict(self.get_topic_names_and_types())
        for topic in missing:
            if topic not in types:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue  # only subscribers so far: nothing to record, and no QoS to match
            msgtype = types[topic][0]
            if len(types[topic]) > 1:
                self._warn_once(topic, f"{topic} has several types {types[topic]}; recording {msgtype}")
            try:
                cls = message_class(msgtype)
                spec = TopicSpec(topic, msgtype, tuple(offered_qos(i) for i in publishers))
                self.episodes.set_topic(spec)
            except (ImportError, AttributeError, ValueError, RecordingError) as exc:
                self._warn_once(topic, f"cannot record {topic} ({msgtype}): {exc}")
                continue
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in publishers)
            latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in publishers)
            qos = QoSProfile(
                depth=int(self.p["queue_depth"]),
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
            )
            events = SubscriptionEventCallbacks(message_lost=functools.partial(self._on_lost, topic))
            self.subscriptions_by_topic[topic] = self.create_subscription(
                cls, topic, functools.partial(self._on_message, topic), qos, raw=True, event_callbacks=events
            )
            self.get_logger().info(
                f"recording {topic} ({msgtype}, {'reliable' if reliable else 'best effort'}"
                f"{', transient local' if latched else ''})"
            )

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    # ------------------------------------------------------------------------------------------ inputs
    def _on_message(self, topic: str, data: bytes, info: dict) -> None:
        gid = info.get("publisher_gid") or {}
        self.delivery.see(topic, bytes(gid.get("data", b"")), info.get("publication_sequence_number"))
        now = time.time_ns()
        received = int(info.get("received_timestamp") or 0)
        # The middleware's reception time is the true receive time, also when this callback runs late (a busy
        # machine); the callback's time only stands in when the middleware gives none or uses another clock.
        stamp = received if now - CLOCK_MISMATCH_NS < received <= now + CLOCK_MISMATCH_NS else now
        # A reliable subscription delivers in order, but a repaired (resent) message is received after later ones:
        # it, and those queued behind it, became available when it arrived. Strictly increasing per topic.
        stamp = max(stamp, self._last_stamp.get(topic, 0) + 1)
        self._last_stamp[topic] = stamp
        self.episodes.offer(topic, stamp, data)

    def _take_waiting(self, limit: int = 100_000) -> int:
        """Record what the middleware has received but the executor not yet handed over (a busy machine lags)."""
        taken = 0
        for topic, sub in self.subscriptions_by_topic.items():
            with sub.handle:
                while taken < limit:
                    got = sub.handle.take_message(sub.msg_type, sub.raw)
                    if got is None:
                        break
                    self._on_message(topic, *got)
                    taken += 1
        return taken

    def _on_lost(self, topic: str, info) -> None:
        """The middleware's report of messages that will never arrive (the publisher dropped them)."""
        self.dds_lost[topic] += int(info.total_count_change)

    def _on_task(self, msg: String) -> None:
        self.current_task = msg.data.strip()

    # ------------------------------------------------------------------------------------------ services
    def _on_start(self, request: StartEpisode.Request, response: StartEpisode.Response) -> StartEpisode.Response:
        task = request.task.strip() or self.current_task
        try:
            if self.backend == "ros2bag":
                topic = self.episodes.config.episode_topic
                before = self.count_subscribers(topic)
                info = self.episodes.start(task, ready=lambda: self.count_subscribers(topic) > before)
            else:
                info = self.episodes.start(task)
        except RecordingError as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().warning(f"episode not started: {exc}")
            return response
        self.current_task = info.task
        self._missed_at_start = dict(self.delivery.missed)
        self._lost_at_start = dict(self.dds_lost)
        self.task_pub.publish(String(data=info.task))
        self.episode_pub.publish(String(data=f"start:{info.task}"))
        response.success, response.bag_path = True, str(info.path)
        response.message = f"recording episode {info.index} ({info.task!r}) to {info.path}"
        self.get_logger().info(response.message)
        return response

    def _on_stop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._finish("stop", response)

    def _on_discard(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._finish("discard", response)

    def _finish(self, command: str, response: Trigger.Response) -> Trigger.Response:
        if not self.episodes.recording:
            response.success, response.message = False, f"no episode is recording (nothing to {command})"
            return response
        if self.backend == "ros2bag":
            self.episode_pub.publish(String(data=command))
            time.sleep(float(self.p["stop_grace"]))  # let the marker reach ros2 bag before it closes
        else:
            self._take_waiting()
        try:
            result = self.episodes.stop() if command == "stop" else self.episodes.discard()
        except RecordingError as exc:
            response.success, response.message = False, str(exc)
            return response
        if self.backend != "ros2bag":
            self.episode_pub.publish(String(data=command))
        message = self._report(result)
        response.success = result.summary.readable or not result.kept
        response.message = message
        return response

    def _report(self, result: EpisodeResult) -> str:
        """Log a finished episode (with messages that never reached the recorder); returns the line."""
        self.last_result = result
        self._drops_logged = 0
        message = result.message()
        missed = {t: n - self._missed_at_start.get(t, 0) for t, n in self.delivery.missed.items()}
        missed = {t: n for t, n in missed.items() if n > 0}
        if missed:
            total = sum(missed.values())
            by_publisher = min(total, sum(n - self._lost_at_start.get(t, 0) for t, n in self.dds_lost.items()))
            message += (
                f"; {total} messages never reached the recorder ({', '.join(f'{t} {n}' for t, n in missed.items())}):"
                f" {by_publisher} dropped from their publishers' queues before the recorder acknowledged them (the "
                f"recorder was starved of CPU; deeper publisher queues help), {total - by_publisher} pushed out of "
                f"the recorder's subscription queues before it took them (raise queue_depth)"
            )
        log = self.get_logger()
        if result.summary.error or not result.summary.readable or missed:
            log.error(message)  # rclpy: one severity per call site
        else:
            log.info(message)
        return message

    # ------------------------------------------------------------------------------------------ outputs
    def _on_diagnostics(self) -> None:
        self._watch()
        now = time.monotonic()
        base_time, base_counts = self._rate_base
        span = max(now - base_time, 1e-6)
        received = dict(self.delivery.received)
        self._rate_base = (now, received)
        info = self.episodes.current
        values: dict = {"backend": self.backend, "state": "recording" if info else "idle", "task": self.current_task}
        level, message = DiagnosticStatus.OK, "idle"
        if info is not None:
            message = f"recording episode {info.index}"
            values.update(episode=info.index, bag=str(info.path), elapsed_s=(time.time_ns() - info.start_ns) / 1e9)
        writer = getattr(self.episodes, "writer", None)
        if writer is not None:
            values.update(
                queue_depth=writer.queue_depth,
                queue_mb=writer.queue_bytes / 2**20,
                written_mb=sum(c.bytes for c in writer.counters.values()) / 2**20,
            )
            dropped = sum(c.unwritten for c in writer.counters.values())
            values["dropped"] = dropped
            if dropped > self._drops_logged:
                level, message = DiagnosticStatus.WARN, f"{message}: {dropped} messages dropped"
                self.get_logger().warning(
                    f"{dropped - self._drops_logged} messages dropped in the last period (queue full: the disk is "
                    f"slower than the topics; raise max_queue_mb or record fewer topics)"
                )
                self._drops_logged = dropped
            for topic, c in writer.counters.items():
                values[f"{topic} written"] = c.written
                if c.unwritten:
                    values[f"{topic} dropped"] = c.unwritten
        for topic in self.wanted:
            if topic in self.subscriptions_by_topic:
                values[f"{topic} rate_hz"] = (received.get(topic, 0) - base_counts.get(topic, 0)) / span
            if self.delivery.missed.get(topic) or self.dds_lost.get(topic):
                values[f"{topic} missed"] = self.delivery.missed.get(topic, 0)
                values[f"{topic} lost_by_middleware"] = self.dds_lost.get(topic, 0)
        if self.backend == "rosbags":
            values["topics_waiting"] = ", ".join(self._unsubscribed()) or "none"
        try:
            values["disk_free_mb"] = disk_free(self.episodes.output_dir) / 2**20
        except OSError:
            values["disk_free_mb"] = "unknown"
        last = self.last_result
        if last is not None:
            values["last_episode"] = last.message()
            if last.summary.error and info is None:
                level, message = DiagnosticStatus.ERROR, f"last episode: {last.summary.error}"
        status = diagnostic_status(f"{self.get_name()}: recording", self.backend, level, message, values)
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self.diag_pub.publish(msg)

    def _watch(self) -> None:
        """Stop an episode whose writer failed (disk full) or whose ros2 bag process died."""
        if not self.episodes.recording:
            return
        writer = getattr(self.episodes, "writer", None)
        failed = writer is not None and writer.error is not None
        died = self.backend == "ros2bag" and not self.episodes.alive
        if failed or died:
            reason = writer.error if failed else "`ros2 bag record` exited"
            self.get_logger().error(f"stopping the episode: {reason}")
            self._report(self.episodes.stop())
            self.episode_pub.publish(String(data="stop"))

    def close(self) -> None:
        """Stop the episode being recorded (Ctrl-C, SIGTERM): its bag is closed and kept."""
        result = self.episodes.close()
        if result is not None:
            self._report(result)
