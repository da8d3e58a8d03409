"""The policy's side of the LIBERO lock-step handshake (``trigger request``) through real rclpy: every chunk request
is answered once, from the observation stamped exactly as the request; a request whose observation is refused stays
open, so the bridge's repeat of it is served (it used to be ignored, and the simulator waited forever)."""

from __future__ import annotations

import numpy as np
import pytest
from model_node_harness import FRONT, NS, WRIST, Probe, params, stamp_of
from rynnvla_ros.msg import ChunkRequest

from rynnvla_model.data.libero import STATE_NAMES
from rynnvla_ros.image_conversion import array_to_image
from rynnvla_ros.libero.protocol import ACTION_SPACE
from rynnvla_ros.nodes.model_common import to_stamp
from rynnvla_ros.nodes.policy import PolicyNode

TASK = "open the middle drawer of the cabinet"
STATE = (np.arange(8) / 10.0).tolist()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from rynnvla_ros.inference.tiny_checkpoint import make_tiny_libero_checkpoint

    return str(make_tiny_libero_checkpoint(tmp_path_factory.mktemp("tiny_libero"), image_size=32, time_horizon=5))


def test_each_request_is_answered_once_and_a_refused_one_on_its_repeat(ros_context, checkpoint):
    node = PolicyNode(
        context=ros_context,
        parameter_overrides=params(checkpoint=checkpoint, device="cpu", trigger="request", dry_run=False),
    )
    probe = Probe(ros_context, node)
    request_pub = probe.node.create_publisher(ChunkRequest, "chunk_request", 10)
    buffers = node.assembler

    def request(stamp: int) -> None:
        msg = ChunkRequest(task=TASK)
        msg.header.stamp = to_stamp(stamp)
        request_pub.publish(msg)

    def state(stamp: int) -> None:
        probe.send(stamp, names=STATE_NAMES, positions=STATE, images=False)
        assert probe.spin_until(lambda: (near := buffers.joints.nearest(stamp)) is not None and near.stamp == stamp, 10)

    def image(camera: str, stamp: int) -> None:
        msg = array_to_image(FRONT if camera == "front" else WRIST, "rgb8")
        msg.header.stamp = to_stamp(stamp)
        (probe.front_pub if camera == "front" else probe.wrist_pub).publish(msg)
        buffer = buffers.front if camera == "front" else buffers.wrist
        assert probe.spin_until(lambda: (latest := buffer.latest()) is not None and latest.stamp == stamp, 10)

    def answered() -> list[int]:
        return [stamp_of(c) for c in probe.chunks]

    try:
        t0, t1, t2 = 5 * NS, 6 * NS, 7 * NS  # simulation times: the node's own clock plays no part
        # frames alone make no observation; the request for them does, once
        state(t0)
        image("wrist", t0)
        image("front", t0)
        probe.spin(0.3)
        assert probe.chunks == []
        request(t0)
        assert probe.spin_until(lambda: answered() == [t0], 30)
        assert probe.chunks[0].action_space == ACTION_SPACE and probe.chunks[0].horizon == 5
        request(t0)  # the bridge repeats a request while the chunk is on its way: not computed twice
        probe.spin(0.5)
        assert answered() == [t0]

        # refused: the only state near t1 is 0.5 s after it; the repeat (after the state came) is served
        state(t1 + NS // 2)
        image("wrist", t1)
        image("front", t1)
        request(t1)
        assert probe.spin_until(lambda: node.rejections.counts.get("stale_joint_state") == 1, 10)
        state(t1)
        probe.spin(0.3)
        assert answered() == [t0]
        request(t1)
        assert probe.spin_until(lambda: answered() == [t0, t1], 30)

        # the request comes first and its observation waits for the wrist frame and the state; repeats meanwhile
        # are no new requests (nothing is refused), and it is answered once they are there
        request(t2)
        image("front", t2)
        request(t2)
        image("wrist", t2)
        request(t2)
        probe.spin(0.3)
        assert answered() == [t0, t1]
        state(t2)
        assert probe.spin_until(lambda: answered() == [t0, t1, t2], 30)
        request(t2)
        probe.spin(0.5)
        assert answered() == [t0, t1, t2] and node.rejections.counts == {"stale_joint_state": 1}
    finally:
        probe.close()
        node.close()
        node.destroy_node()
