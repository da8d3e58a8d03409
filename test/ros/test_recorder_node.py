"""The ``recorder`` node with real rclpy, as the installed executable: its services, what it writes, bad input,
bad parameters and shutdown in the middle of an episode."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import rclpy
from conftest import node_executable, spin_until
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from rynnvla_ros.srv import StartEpisode
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rynnvla_ros import topics
from rynnvla_ros.dataset.types import base_typestore

STORE = base_typestore()
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
JOINT_STATE = "sensor_msgs/msg/JointState"
SERVICE_TIMEOUT = 60.0  # s: generous, the machine is shared


class OutputDrain:
    """Reads a process's combined output on a thread (a full pipe would block it) and keeps the lines."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text:
                return True
            time.sleep(0.05)
        return needle in self.text


class RecorderClient:
    """Calls the recorder's services and watches its episode topic and diagnostics."""

    def __init__(self, context) -> None:
        self.node = rclpy.create_node("recorder_probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        n = self.node
        self.start_client = n.create_client(StartEpisode, "/recorder/start_episode")
        self.stop_client = n.create_client(Trigger, "/recorder/stop_episode")
        self.discard_client = n.create_client(Trigger, "/recorder/discard_episode")
        self.episode_msgs: list[str] = []
        self.diagnostics: list[DiagnosticArray] = []
        n.create_subscription(String, topics.EPISODE, lambda m: self.episode_msgs.append(m.data), LATCHED)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)

    def wait_ready(self, timeout: float = SERVICE_TIMEOUT) -> None:
        for client in (self.start_client, self.stop_client, self.discard_client):
            assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} did not appear"

    def call(self, client, request):
        future = client.call_async(request)
        assert spin_until(self.executor, future.done, SERVICE_TIMEOUT), f"{client.srv_name} did not answer"
        return future.result()

    def start(self, task: str = "") -> StartEpisode.Response:
        return self.call(self.start_client, StartEpisode.Request(task=task))

    def stop(self) -> Trigger.Response:
        return self.call(self.stop_client, Trigger.Request())

    def discard(self) -> Trigger.Response:
        return self.call(self.discard_client, Trigger.Request())

    def spin(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)


class StatePublisher:
    """Publishes JointState on /joint_states from the probe's executor; frame_id carries a sequence number."""

    def __init__(self, client: RecorderClient, rate: float = 100.0) -> None:
        self.pub = client.node.create_publisher(JointState, topics.JOINT_STATES, 10)
        self.seq = 0
        self.sent_at: list[float] = []
        self.timer = client.node.create_timer(1.0 / rate, self.publish)

    def publish(self) -> None:
        msg = JointState(name=["a"], position=[float(self.seq)])
        msg.header.frame_id = str(self.seq)
        self.pub.publish(msg)
        self.sent_at.append(time.monotonic())
        self.seq += 1

    def seqs_between(self, start: float, end: float) -> set[int]:
        return {i for i, t in enumerate(self.sent_at) if start <= t < end}


def start_recorder(start_process, output: Path, *params: str) -> tuple[subprocess.Popen, OutputDrain]:
    args = [f"output_dir:={output}", "discovery_period:=0.2", "diagnostics_period:=0.5", *params]
    proc = start_process(node_executable("recorder"), "--ros-args", *[x for a in args for x in ("-p", a)])
    return proc, OutputDrain(proc)


def bag_topics(path: Path) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(bytes(raw))
    return out


def strings(raw: list[bytes]) -> list[str]:
    return [STORE.deserialize_cdr(r, "std_msgs/msg/String").data for r in raw]


@pytest.mark.ros
def test_services_episodes_and_what_the_bag_holds(ros_context, start_process, tmp_path: Path) -> None:
    proc, out = start_recorder(start_process, tmp_path / "bags")
    client = RecorderClient(ros_context)
    client.wait_ready()

    # nothing to stop or discard, and no task anywhere
    for response, command in ((client.stop(), "stop"), (client.discard(), "discard")):
        assert not response.success and f"no episode is recording (nothing to {command})" in response.message
    response = client.start("")
    assert not response.success and "no task text" in response.message and response.bag_path == ""

    states = StatePublisher(client)
    assert spin_until(client.executor, lambda: states.pub.get_subscription_count() > 0, 30), out.text
    response = client.start("stack the blocks")
    assert response.success, response.message
    started = time.monotonic()
    bag = Path(response.bag_path)
    assert bag.parent == tmp_path / "bags" and bag.is_dir() and "stack the blocks" in response.message
    again = client.start("another task")
    assert not again.success and "already recording" in again.message and str(bag) in again.message

    client.spin(1.5)
    stopping = time.monotonic()
    response = client.stop()
    assert response.success and f"saved to {bag}" in response.message, response.message
    assert "dropped" not in response.message

    recorded = bag_topics(bag)
    seqs = [
        int(STORE.deserialize_cdr(r, "sensor_msgs/msg/JointState").header.frame_id)
        for r in recorded[topics.JOINT_STATES]
    ]
    assert seqs == sorted(seqs) and seqs == list(range(seqs[0], seqs[-1] + 1))  # in order, no gap
    assert states.seqs_between(started, stopping) <= set(seqs)  # everything sent during the episode
    assert strings(recorded[topics.EPISODE]) == ["start:stack the blocks", "stop"]
    assert strings(recorded[topics.TASK]) == ["stack the blocks"]

    # an empty request uses the current task (the one the recorder published on its task topic)
    response = client.start("")
    assert response.success and "stack the blocks" in response.message
    second = Path(response.bag_path)
    client.spin(0.5)
    response = client.discard()
    assert response.success and "discarded" in response.message and not second.exists()
    assert sorted((tmp_path / "bags").iterdir()) == [bag]

    assert spin_until(client.executor, lambda: len(client.episode_msgs) >= 4, 10)
    assert client.episode_msgs[-4:] == ["start:stack the blocks", "stop", "start:stack the blocks", "discard"]
    statuses = [s for d in client.diagnostics for s in d.status if s.name == "recorder: recording"]
    assert statuses, "no recorder diagnostics"
    keys = {kv.key for s in statuses for kv in s.values}
    assert {"backend", "state", "disk_free_mb", f"{topics.JOINT_STATES} rate_hz", "queue_depth"} <= keys
    assert proc.poll() is None


@pytest.mark.ros
def test_malformed_messages_are_recorded_as_received_and_the_node_keeps_going(
    ros_context, start_process, tmp_path: Path
) -> None:
    """The recorder never deserializes: bytes that are no JointState are written as they came (the converter then
    reports them as corrupt), and recording goes on."""
    proc, out = start_recorder(start_process, tmp_path / "bags")
    client = RecorderClient(ros_context)
    client.wait_ready()
    pub = client.node.create_publisher(JointState, topics.JOINT_STATES, 10)
    good = JointState(name=["a"], position=[1.0])
    pub.publish(good)
    assert spin_until(client.executor, lambda: pub.get_subscription_count() > 0, 30), out.text
    response = client.start("robust")
    assert response.success, response.message
    bag = Path(response.bag_path)
    garbage = b"\x00\x01\x00\x00this is not a JointState"
    for _ in range(3):
        pub.publish(good)
        client.spin(0.05)
        pub.publish(garbage)
        client.spin(0.05)
    pub.publish(good)
    client.spin(0.5)
    response = client.stop()
    assert response.success, response.message
    recorded = bag_topics(bag)[topics.JOINT_STATES]
    assert recorded.count(garbage) == 3 and len(recorded) == 7
    for raw in recorded:
        if raw != garbage:
            assert list(STORE.deserialize_cdr(raw, JOINT_STATE).position) == [1.0]
    assert proc.poll() is None


@pytest.mark.ros
def test_unwritable_output_dir_is_reported_and_the_node_stays_up(ros_context, start_process) -> None:
    proc, out = start_recorder(start_process, Path("/sys/rynnvla_bags"))
    client = RecorderClient(ros_context)
    client.wait_ready()
    response = client.start("anything")
    assert not response.success and "cannot create output_dir /sys/rynnvla_bags" in response.message
    assert out.wait_for("output_dir /sys/rynnvla_bags cannot be created", 10), out.text
    assert proc.poll() is None


@pytest.mark.ros
@pytest.mark.parametrize(
    ("param", "error"),
    [
        ("backend:=bogus", "backend must be one of auto, rosbags, ros2bag"),
        ("storage:=zip", "storage must be one of mcap, sqlite3"),
    ],
)
def test_bad_parameters_stop_the_node_with_a_clear_message(tmp_path: Path, param: str, error: str) -> None:
    cmd = [node_executable("recorder"), "--ros-args", "-p", f"output_dir:={tmp_path}", "-p", param]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and error in done.stderr, done.stderr


@pytest.mark.ros
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_shutdown_during_an_episode_leaves_a_closed_readable_bag(ros_context, start_process, tmp_path, sig) -> None:
    proc, out = start_recorder(start_process, tmp_path / "bags")
    client = RecorderClient(ros_context)
    client.wait_ready()
    states = StatePublisher(client)
    assert spin_until(client.executor, lambda: states.pub.get_subscription_count() > 0, 30), out.text
    response = client.start("interrupted")
    assert response.success, response.message
    client.spin(1.0)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    out.thread.join(timeout=10)  # the rest of its output
    assert code == 0, out.text
    bag = Path(response.bag_path)
    assert (bag / "metadata.yaml").is_file()
    recorded = bag_topics(bag)
    assert strings(recorded[topics.EPISODE]) == ["start:interrupted", "stop"]
    assert len(recorded[topics.JOINT_STATES]) > 20
    assert "saved to" in out.text
