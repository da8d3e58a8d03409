"""``chunk_visualizer`` with real rclpy: chunks in, the gripper's planned path as RViz markers out."""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from conftest import spin_until
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rynnvla_ros.msg import ActionChunk
from sensor_msgs.msg import JointState
from visualization_msgs.msg import Marker, MarkerArray

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.nodes.chunk_visualizer import ChunkVisualizerNode

pytestmark = pytest.mark.ros
NS = 1_000_000_000
Q = np.array([0.2, -0.7, 0.8, 0.5, 0.3, 0.4])


@pytest.fixture
def graph(ros_context):
    node = ChunkVisualizerNode(context=ros_context, parameter_overrides=[Parameter("max_rate", value=50.0)])
    probe = rclpy.create_node("visualizer_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    for n in (node, probe):
        executor.add_node(n)
    got: list[MarkerArray] = []
    probe.create_subscription(MarkerArray, "planned_path", got.append, 10)
    pubs = {
        "chunk": probe.create_publisher(ActionChunk, "action_chunk", 10),
        "joints": probe.create_publisher(JointState, "joint_states", 10),
    }
    yield node, probe, executor, got, pubs
    executor.shutdown()
    node.destroy_node()
    probe.destroy_node()


def chunk(rows: np.ndarray, stamp: int, space: str = "joint_positions", dry_run: bool = False) -> ActionChunk:
    msg = ActionChunk(names=list(desc.JOINT_NAMES), action_space=space, dt=0.1, start_step=1, dry_run=dry_run)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, NS)
    msg.horizon, msg.dim = rows.shape
    msg.data = rows.ravel().tolist()
    return msg


def test_the_path_is_the_gripper_at_each_target(graph):
    _, probe, executor, got, pubs = graph
    rows = (Q + np.linspace(0, 0.3, 8)[:, None]).astype(np.float32)
    now = probe.get_clock().now().nanoseconds
    assert spin_until(executor, lambda: pubs["chunk"].publish(chunk(rows, now)) or bool(got), 10)
    path, steps, ghost = got[-1].markers
    assert [m.ns for m in got[-1].markers] == ["path", "steps", "ghost"]
    assert (path.type, steps.type, ghost.type) == (Marker.LINE_STRIP, Marker.SPHERE_LIST, Marker.LINE_STRIP)
    assert path.header.frame_id == "base_link" and len(path.points) == len(steps.points) == 8
    for q, p in zip(rows.astype(float), path.points, strict=True):
        np.testing.assert_allclose([p.x, p.y, p.z], desc.forward_kinematics(q)[desc.EE_LINK][:3, 3], atol=1e-12)
    assert len(ghost.points) == 7 and ghost.colors[0].a == pytest.approx(0.5)
    assert path.colors[-1].g > path.colors[-1].r  # green: executed
    life = path.lifetime.sec + path.lifetime.nanosec / NS
    assert 0.8 + 1.0 - 0.3 < life <= 0.8 + 1.0 + 0.01  # until the last step (0.8 s after the stamp), then hold_time

    def orange() -> bool:  # chunks published before may still arrive first: wait for the dry run's colour
        return got[-1].markers[0].colors[-1].r > got[-1].markers[0].colors[-1].g

    assert spin_until(executor, lambda: pubs["chunk"].publish(chunk(rows, now, dry_run=True)) or orange(), 10)


def test_deltas_need_a_joint_state_and_bad_chunks_are_logged(graph, capfd):
    node, probe, executor, got, pubs = graph
    deltas = np.full((4, 6), 0.05, np.float32)
    now = probe.get_clock().now().nanoseconds
    spin_until(executor, lambda: pubs["chunk"].publish(chunk(deltas, now, "joint_deltas")) or node.rejections.total, 10)
    assert not got and "not drawn: no joint state for shoulder_pan" in capfd.readouterr().err
    nan = np.full((2, 6), np.nan, np.float32)
    spin_until(executor, lambda: pubs["chunk"].publish(chunk(nan, now)) or node.rejections.total > 1, 10)
    js = JointState(name=list(desc.JOINT_NAMES), position=Q.tolist())
    js.header.stamp.sec, js.header.stamp.nanosec = divmod(now, NS)

    def send() -> bool:
        pubs["joints"].publish(js)
        pubs["chunk"].publish(chunk(deltas, now, "joint_deltas"))
        return bool(got)

    assert spin_until(executor, send, 10)  # still running; deltas are added to the state at the stamp
    first = got[-1].markers[0].points[0]
    want = desc.forward_kinematics(desc.joint_limits().clip(Q + deltas[0]))[desc.EE_LINK][:3, 3]
    np.testing.assert_allclose([first.x, first.y, first.z], want, atol=1e-6)
    assert node.rejections.counts["bad_chunk"] >= 2


def test_chunks_faster_than_max_rate_are_thinned(ros_context):
    node = ChunkVisualizerNode(context=ros_context, parameter_overrides=[Parameter("max_rate", value=2.0)])
    probe = rclpy.create_node("rate_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    for n in (node, probe):
        executor.add_node(n)
    pub = probe.create_publisher(ActionChunk, "action_chunk", 10)
    try:
        rows = np.tile(Q, (3, 1)).astype(np.float32)
        end = probe.get_clock().now().nanoseconds + 2 * NS
        while probe.get_clock().now().nanoseconds < end:  # 20 chunks a second for 2 s
            pub.publish(chunk(rows, probe.get_clock().now().nanoseconds))
            spin_until(executor, lambda: False, 0.05)
        spin_until(executor, lambda: False, 0.6)
        assert 3 <= node.drawn <= 6, node.drawn
    finally:
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()
