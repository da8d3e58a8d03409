"""Helpers for the policy / world_model node tests: a tiny checkpoint and a probe that plays cameras and robot."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from conftest import spin_until
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rynnvla_ros.msg import ActionChunk
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from rynnvla_ros.image_conversion import array_to_image
from rynnvla_ros.nodes.policy import TASK_QOS

NS = 1_000_000_000
IMAGE = 32  # the tiny model's image side
K = 3
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
# a joint state as a driver may send it: another order and an extra joint
MSG_NAMES = ["gripper", "wrist_roll", "camera_tilt", "shoulder_pan", "elbow_flex", "shoulder_lift", "wrist_flex"]
MSG_POSITIONS = [0.3, 0.5, 9.0, 0.1, -0.3, 0.2, 0.4]
Q = np.array([0.1, 0.2, -0.3, 0.4, 0.5, 0.3])  # MSG_POSITIONS in JOINTS order
FRONT = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
WRIST = np.random.default_rng(2).integers(0, 256, (40, 48, 3), dtype=np.uint8)


def params(**values: object) -> list[Parameter]:
    """Parameter overrides for a node."""
    return [Parameter(k, value=v) for k, v in values.items()]


class Probe:
    """Publishes joint states, images and tasks; records what the model nodes publish."""

    def __init__(self, context: object, *nodes: object) -> None:
        self.node = rclpy.create_node("probe", context=context)
        n = self.node
        self.front_pub = n.create_publisher(Image, "front/image_raw", 10)
        self.wrist_pub = n.create_publisher(Image, "wrist/image_raw", 10)
        self.joint_pub = n.create_publisher(JointState, "joint_states", 10)
        self.chunk_pub = n.create_publisher(ActionChunk, "action_chunk", 10)
        self.task_pub = n.create_publisher(String, "task", TASK_QOS)
        self.chunks: list[ActionChunk] = []
        self.trajectories: list[JointTrajectory] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.predicted: dict[str, list[Image]] = {"front": [], "wrist": []}
        n.create_subscription(ActionChunk, "action_chunk", self.chunks.append, 50)
        n.create_subscription(JointTrajectory, "joint_trajectory", self.trajectories.append, 50)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)
        for cam, sink in self.predicted.items():
            n.create_subscription(Image, f"predicted/{cam}/image_raw", sink.append, 50)
        self.executor = SingleThreadedExecutor(context=context)
        for node in (self.node, *nodes):
            self.executor.add_node(node)
        self.sent: list[int] = []

    def now(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def send(self, stamp: int | None = None, names=MSG_NAMES, positions=MSG_POSITIONS, images: bool = True) -> int:
        """A joint state and (unless ``images`` is False) a wrist and a front image, all stamped ``stamp``."""
        stamp = self.now() if stamp is None else stamp
        sec, nanosec = divmod(stamp, NS)
        js = JointState(name=list(names), position=list(positions))
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nanosec
        self.joint_pub.publish(js)
        if images:
            for pub, pixels, frame in ((self.wrist_pub, WRIST, "wrist_cam"), (self.front_pub, FRONT, "front_cam")):
                img = array_to_image(pixels, "rgb8")
                img.header.stamp.sec, img.header.stamp.nanosec = sec, nanosec
                img.header.frame_id = frame
                pub.publish(img)
            self.sent.append(stamp)
        return stamp

    def spin(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def spin_until(self, predicate, timeout: float) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def drive(self, predicate, timeout: float, period: float = 0.1, **send) -> bool:
        """Send an observation every ``period`` s until ``predicate()`` holds or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(**send)
            if self.spin_until(predicate, period):
                return True
        return predicate()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def stamp_of(msg: object) -> int:
    return msg.header.stamp.sec * NS + msg.header.stamp.nanosec


def diagnostic_values(probe: Probe) -> dict[str, str]:
    """Key/values of the newest diagnostics message (empty before the first)."""
    return {kv.key: kv.value for kv in probe.diagnostics[-1].status[0].values} if probe.diagnostics else {}
