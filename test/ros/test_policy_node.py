"""The ``policy`` node through real rclpy: chunks from images + joint states, gating, dry run, latest-only."""

import time

import numpy as np
import pytest
from conftest import node_executable
from model_node_harness import FRONT, IMAGE, JOINTS, NS, WRIST, K, Probe, Q, diagnostic_values, params, stamp_of
from std_msgs.msg import String

from rynnvla_model.image_tokenizer import resize
from rynnvla_ros.image_conversion import array_to_image
from rynnvla_ros.inference.model_cache import ModelLoadError
from rynnvla_ros.inference.robot_io import ROBOT_IO_FILE, JointMap, so100_lerobot
from rynnvla_ros.inference.tiny_checkpoint import make_tiny_checkpoint
from rynnvla_ros.nodes.policy import PolicyNode

TASK = "put the cube in the bowl"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), image_size=IMAGE, time_horizon=K))


@pytest.fixture
def make_policy(ros_context, checkpoint):
    made = []

    def make(**overrides):
        values = {"checkpoint": checkpoint, "device": "cpu", "task": TASK, "dry_run": False} | overrides
        node = PolicyNode(context=ros_context, parameter_overrides=params(**values))
        probe = Probe(ros_context, node)
        made.append((node, probe))
        return node, probe

    yield make
    for node, probe in made:
        probe.close()
        node.close()
        node.destroy_node()


def test_chunks_from_images_and_joint_states(make_policy):
    node, probe = make_policy()
    assert probe.drive(lambda: len(probe.chunks) >= 2 and len(probe.trajectories) >= 2, timeout=20)
    chunk = probe.chunks[-1]
    assert stamp_of(chunk) in probe.sent  # stamped with the observation it was computed from
    assert list(chunk.names) == JOINTS and chunk.action_space == "joint_positions"
    assert (chunk.horizon, chunk.dim, len(chunk.data), chunk.start_step) == (K, 6, K * 6, 0)
    assert chunk.dt == pytest.approx(1 / 30) and chunk.inference_time > 0 and not chunk.dry_run
    assert [c.seq for c in probe.chunks] == list(range(1, len(probe.chunks) + 1))
    # the numbers are the model's chunk for exactly these inputs, made absolute joint positions in radians
    io = node.io
    want = node.model.predict_chunk(TASK, io.to_model_state(Q), [resize(FRONT, IMAGE)], [resize(WRIST, IMAGE)])
    expected = io.to_joint_positions(want.actions, Q)
    np.testing.assert_allclose(np.reshape(chunk.data, (K, 6)), expected, rtol=1e-5, atol=1e-5)
    traj = next(t for t in probe.trajectories if stamp_of(t) == stamp_of(chunk))
    assert list(traj.joint_names) == JOINTS and len(traj.points) == K
    assert traj.points[2].time_from_start.nanosec == pytest.approx(2 / 30 * NS, abs=1)
    np.testing.assert_allclose([p.positions for p in traj.points], np.reshape(chunk.data, (K, 6)), atol=1e-6)


def test_stale_images_give_no_chunk(make_policy):
    node, probe = make_policy(max_age=0.2)
    probe.drive(lambda: node.rejections.counts.get("stale_image", 0) >= 3, timeout=10, stamp=probe.now() - NS)
    probe.spin(0.3)
    assert probe.chunks == [] and node.rejections.counts["stale_image"] >= 3
    assert probe.drive(lambda: bool(probe.chunks), timeout=20)  # fresh observations work again


def test_bad_joint_states_are_rejected_and_the_node_keeps_running(make_policy, capfd):
    node, probe = make_policy()
    nan = [0.1, float("nan"), 0.2, 0.3, 0.4, 0.5]
    counts = node.rejections.counts
    probe.drive(lambda: counts.get("non_finite_joint", 0) >= 3, timeout=10, names=JOINTS, positions=nan)
    probe.drive(lambda: counts.get("missing_joint", 0) >= 3, timeout=10, names=JOINTS[:5], positions=[0.0] * 5)
    probe.spin(0.3)
    assert probe.chunks == []
    err = capfd.readouterr().err
    assert "joint_states rejected: joint state has non-finite position(s) for shoulder_lift" in err
    assert "joint_states rejected: joint state lacks joint(s) gripper" in err
    assert probe.drive(lambda: bool(probe.chunks), timeout=20)  # still alive, and valid states work


@pytest.mark.parametrize(("dry_run", "publish_trajectory"), [(True, True), (False, False)])
def test_no_trajectory_in_dry_run_or_when_disabled(make_policy, dry_run, publish_trajectory):
    _, probe = make_policy(dry_run=dry_run, publish_trajectory=publish_trajectory)
    assert probe.drive(lambda: len(probe.chunks) >= 2, timeout=20)
    probe.spin(0.2)
    assert all(c.dry_run == dry_run for c in probe.chunks) and probe.trajectories == []


def test_task_topic_replaces_the_parameter(make_policy):
    node, probe = make_policy(task="")
    probe.drive(lambda: node.rejections.counts.get("no_task", 0) >= 2, timeout=10)
    assert probe.chunks == []
    probe.task_pub.publish(String(data="  stack the blocks "))
    assert probe.drive(lambda: bool(probe.chunks), timeout=20)
    assert node.task == "stack the blocks"


def test_images_that_cannot_be_converted_are_rejected(make_policy, capfd):
    node, probe = make_policy()
    depth = array_to_image(np.zeros((4, 4), np.uint16), "16UC1")
    depth.header.stamp = probe.node.get_clock().now().to_msg()
    assert probe.spin_until(lambda: probe.front_pub.publish(depth) or node.rejections.counts.get("bad_image"), 10)
    assert "front image rejected: cannot convert 16UC1 to rgb8" in capfd.readouterr().err
    assert probe.drive(lambda: bool(probe.chunks), timeout=20)


def test_robot_io_from_parameters_when_the_checkpoint_has_none(ros_context, tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path, image_size=IMAGE, time_horizon=K)
    (ckpt / ROBOT_IO_FILE).unlink()
    defaults = PolicyNode(context=ros_context, parameter_overrides=params(checkpoint=str(ckpt), device="cpu"))
    assert defaults.io == so100_lerobot()
    values = {"joint_scale": [2.0] * 6, "joint_offset": [1.0] * 6, "relative_joints": ["gripper"], "history": 2}
    custom = PolicyNode(context=ros_context, parameter_overrides=params(checkpoint=str(ckpt), device="cpu", **values))
    assert custom.io.joints[0] == JointMap("shoulder_pan", 2.0, 1.0, False) and custom.io.history == 2
    assert custom.io.relative_mask.tolist() == [False] * 5 + [True]
    for node in (defaults, custom):
        node.close()
        node.destroy_node()


class SlowModel:
    """Wraps the model; every chunk takes ``delay`` s more."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay, self.calls = inner, delay, 0

    def predict_chunk(self, *args, **kwargs):
        self.calls += 1
        time.sleep(self.delay)
        return self.inner.predict_chunk(*args, **kwargs)


def test_a_slow_model_builds_no_queue(make_policy):
    node, probe = make_policy()
    slow = node.model = SlowModel(node.model, delay=0.5)
    assert probe.drive(lambda: len(node.assembler.front) > 0, timeout=10)
    for _ in range(20):  # 20 observations in ~0.4 s, while the first is being computed
        probe.send()
        probe.spin(0.02)
    last = probe.sent[-1]
    assert probe.spin_until(lambda: any(stamp_of(c) == last for c in probe.chunks), timeout=15)
    assert node.worker.wait_idle(5)
    # only a few inferences ran, the rest were replaced by newer observations before they started
    assert slow.calls <= 4 and node.worker.dropped >= len(probe.sent) - slow.calls - 2
    assert node.worker.submitted == slow.calls + node.worker.dropped
    assert len(probe.chunks) == slow.calls


def test_replan_period_skips_frames_but_keeps_them_in_the_history(make_policy):
    node, probe = make_policy(replan_period=0.5)
    assert probe.drive(lambda: bool(probe.chunks), timeout=20)
    sent = len(probe.sent)
    probe.drive(lambda: False, timeout=2.0)  # frames at 10 Hz for 2 s
    assert node.worker.wait_idle(5)
    probe.spin(0.3)
    stamps = [stamp_of(c) for c in probe.chunks]
    assert len(probe.sent) - sent >= 12 and 3 <= len(stamps) <= 6, (len(probe.sent) - sent, len(stamps))
    assert np.diff(stamps).min() >= 0.5 * NS  # one observation per 0.5 s of frames
    assert node.assembler.front.latest().stamp == probe.sent[-1]  # skipped frames still enter the image history


def test_diagnostics_report_latency_drops_and_rejections(make_policy):
    node, probe = make_policy(diagnostics_period=0.2)
    probe.drive(lambda: node.rejections.counts.get("stale_image", 0) >= 1, timeout=10, stamp=probe.now() - NS)
    assert probe.drive(lambda: len(probe.chunks) >= 2, timeout=20)
    assert probe.spin_until(lambda: "latency_s_median" in diagnostic_values(probe), timeout=5)
    values = diagnostic_values(probe)
    assert int(values["chunks"]) >= 2 and int(values["rejected_stale_image"]) >= 1
    assert float(values["latency_s_median"]) > float(values["overhead_s_median"]) > 0
    assert "observations_dropped" in values and values["dry_run"] == "False"


def test_no_checkpoint_is_a_clear_error(ros_context):
    with pytest.raises(ModelLoadError, match="no model given: set the parameter checkpoint"):
        PolicyNode(context=ros_context)


def test_missing_checkpoint_exits_1_naming_the_path(start_process, tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    proc = start_process(node_executable("policy"), "--ros-args", "-p", f"checkpoint:={missing}")
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1
    assert f"checkpoint directory not found: {missing}" in out
