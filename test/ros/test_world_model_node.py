"""The ``world_model`` node through real rclpy, and the model shared with ``policy`` in one process."""

import gc

import numpy as np
import pytest
from model_node_harness import FRONT, IMAGE, JOINTS, NS, WRIST, K, Probe, Q, params, stamp_of
from rynnvla_ros.msg import ActionChunk

from rynnvla_model.image_tokenizer import resize
from rynnvla_ros.image_conversion import image_to_rgb
from rynnvla_ros.inference.model_cache import cached_policies
from rynnvla_ros.inference.tiny_checkpoint import make_tiny_checkpoint
from rynnvla_ros.nodes.policy import PolicyNode
from rynnvla_ros.nodes.world_model import WorldModelNode


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), image_size=IMAGE, time_horizon=K))


@pytest.fixture
def nodes(ros_context):
    made = []

    def make(cls, **values):
        node = cls(context=ros_context, parameter_overrides=params(**values))
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()
        node.destroy_node()


def chunk_msg(stamp: int, rows: np.ndarray, start_step: int = 1, dt: float = 0.1) -> ActionChunk:
    msg = ActionChunk(names=JOINTS, action_space="joint_positions", dt=dt, start_step=start_step)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, NS)
    msg.horizon, msg.dim = rows.shape
    msg.data = rows.astype(np.float32).ravel().tolist()
    msg.dry_run = True
    return msg


def test_predicts_both_frames_stamped_with_the_time_they_show(ros_context, nodes, checkpoint):
    wm = nodes(WorldModelNode, checkpoint=checkpoint, device="cpu")
    probe = Probe(ros_context, wm)
    try:
        stamp = probe.now()
        assert probe.drive(lambda: len(wm.frames["front"]) > 0 and len(wm.joints) > 0, timeout=10, stamp=stamp)
        assert probe.spin_until(lambda: probe.chunk_pub.get_subscription_count() > 1, timeout=10)
        rows = np.stack([Q + 0.05 * (i + 1) for i in range(K)])
        probe.chunk_pub.publish(chunk_msg(stamp, rows))
        assert probe.spin_until(lambda: probe.predicted["front"] and probe.predicted["wrist"], timeout=20)
    finally:
        probe.close()
    front, wrist = probe.predicted["front"][0], probe.predicted["wrist"][0]
    want_stamp = stamp + round((1 + 1) * 0.1 * NS)  # row 0 of a chunk starting at step 1, dt 0.1 s
    assert stamp_of(front) == stamp_of(wrist) == want_stamp
    assert (front.width, front.height, front.encoding) == (IMAGE, IMAGE, "rgb8")
    assert (wrist.header.frame_id, front.header.frame_id) == ("wrist_cam", "front_cam")
    # the pixels are the model's prediction for these frames and the first action in model units
    action = wm.io.to_model_action(rows[0].astype(np.float32).astype(np.float64), Q)
    want = wm.model.predict_next_frames(resize(FRONT, IMAGE), resize(WRIST, IMAGE), action)
    np.testing.assert_array_equal(image_to_rgb(front), want.images[0])
    np.testing.assert_array_equal(image_to_rgb(wrist), want.images[1])


def test_rate_trigger_uses_the_newest_frame_and_the_row_due_then(ros_context, nodes, checkpoint):
    wm = nodes(WorldModelNode, checkpoint=checkpoint, device="cpu", trigger="rate", rate=10.0)
    probe = Probe(ros_context, wm)
    try:
        t0 = probe.now()
        assert probe.spin_until(lambda: probe.chunk_pub.get_subscription_count() > 1, timeout=10)
        probe.chunk_pub.publish(chunk_msg(t0 - int(0.25 * NS), np.stack([Q] * K), start_step=0, dt=0.1))
        assert probe.drive(lambda: bool(probe.predicted["front"]), timeout=20, stamp=t0)
    finally:
        probe.close()
    # the frame at t0 falls in row 2 (due 0.2-0.3 s after the chunk stamp): the prediction is for 0.3 s
    assert stamp_of(probe.predicted["front"][0]) == t0 - int(0.25 * NS) + round(0.3 * NS)


def test_policy_and_world_model_share_one_model_in_one_process(ros_context, nodes, checkpoint):
    gc.collect()
    loaded = cached_policies()  # models other tests' nodes may still hold
    policy = nodes(PolicyNode, checkpoint=checkpoint, device="cpu", task="stack", dry_run=True)
    wm = nodes(WorldModelNode, checkpoint=checkpoint, device="cpu")
    assert wm.model is policy.model and cached_policies() == loaded + 1
    other = nodes(WorldModelNode, checkpoint=checkpoint, device="cpu", dtype="float16")
    assert other.model is not policy.model and cached_policies() == loaded + 2
    # end to end: the world model predicts from the policy's (dry-run) chunks
    probe = Probe(ros_context, policy, wm)
    try:
        assert probe.drive(lambda: bool(probe.chunks) and bool(probe.predicted["front"]), timeout=30)
    finally:
        probe.close()
    chunk = probe.chunks[0]
    assert stamp_of(probe.predicted["front"][0]) in {stamp_of(c) + round(chunk.dt * NS) for c in probe.chunks}
