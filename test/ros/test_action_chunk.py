"""The ActionChunk interface is built into the environment and crosses processes intact."""

import sys
from pathlib import Path

import pytest
import rclpy
from conftest import spin_until
from rclpy.executors import SingleThreadedExecutor
from rynnvla_ros.msg import ActionChunk

PUBLISHER = r"""
import time, rclpy
from rynnvla_ros.msg import ActionChunk
rclpy.init()
node = rclpy.create_node("chunk_publisher")
pub = node.create_publisher(ActionChunk, "/test/action_chunk", 10)
msg = ActionChunk()
msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 567890
msg.header.frame_id = "base"
msg.names = ["shoulder_pan", "shoulder_lift", "elbow_flex"]
msg.action_space = ActionChunk.ACTION_SPACE_JOINT_DELTAS
msg.dt, msg.start_step, msg.horizon, msg.dim = 1 / 30, 2, 2, 3
msg.data = [0.5, -0.25, 1e-3, 3.0, -1e6, 0.125]
msg.seq, msg.inference_time, msg.dry_run = 2**40 + 7, 0.0123, True
for _ in range(200):
    pub.publish(msg)
    time.sleep(0.05)
"""


def test_action_chunk_crosses_processes_intact(ros_context, start_process):
    node = rclpy.create_node("chunk_probe", context=ros_context)
    got: list[ActionChunk] = []
    node.create_subscription(ActionChunk, "/test/action_chunk", got.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    proc = start_process(sys.executable, "-c", PUBLISHER)
    try:
        assert spin_until(executor, lambda: bool(got), timeout=20), proc.poll()
    finally:
        executor.shutdown()
        node.destroy_node()
    m = got[0]
    assert (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) == (1234, 567890, "base")
    assert list(m.names) == ["shoulder_pan", "shoulder_lift", "elbow_flex"]
    assert m.action_space == "joint_deltas"
    assert (m.dt, m.start_step, m.horizon, m.dim) == (1 / 30, 2, 2, 3)
    assert list(m.data) == [0.5, -0.25, pytest.approx(1e-3), 3.0, -1e6, 0.125]
    assert (m.seq, m.inference_time, m.dry_run) == (2**40 + 7, 0.0123, True)


def test_interface_definition_is_installed():
    from ament_index_python.packages import get_package_share_directory

    assert (Path(get_package_share_directory("rynnvla_ros")) / "msg" / "ActionChunk.msg").is_file()
