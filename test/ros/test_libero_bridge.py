"""libero_bridge with real rclpy and the real LIBERO simulator: a tiny LIBERO model drives a task for a few chunks
in lock-step (the policy answers the bridge's chunk requests); images, state, handshake; a forced success."""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from conftest import spin_until
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from rosgraph_msgs.msg import Clock
from rynnvla_ros.msg import ActionChunk, ChunkRequest, EpisodeStatus
from rynnvla_ros.srv import LiberoReset
from sensor_msgs.msg import Image, JointState

from rynnvla_model.data.libero import STATE_NAMES
from rynnvla_ros.image_conversion import image_to_rgb
from rynnvla_ros.libero.protocol import ACTION_NAMES, ACTION_SPACE
from rynnvla_ros.libero.sim import observation_state, rotate_180
from rynnvla_ros.node_runner import NodeSpinner
from rynnvla_ros.nodes.model_common import stamp_ns

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]

K = 5
MAX_STEPS = 12  # three chunks: 5 + 5 + 2 rows
DT_NS = 50_000_000
DRAWER = "wooden_cabinet_1_middle_level"


def params(**values: object) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in values.items()]


class Probe:
    """Records what the bridge and the policy publish; can answer a chunk request itself."""

    def __init__(self, context: object) -> None:
        self.node = rclpy.create_node("probe", context=context)
        n = self.node
        self.images: dict[str, dict[int, Image]] = {"front": {}, "wrist": {}}
        self.states: dict[int, JointState] = {}
        self.requests: list[ChunkRequest] = []
        self.chunks: list[ActionChunk] = []
        self.statuses: list[EpisodeStatus] = []
        self.clock: list[int] = []
        for cam in self.images:
            n.create_subscription(Image, f"{cam}/image_raw", lambda m, c=cam: self._image(c, m), 50)
        n.create_subscription(JointState, "state", lambda m: self.states.__setitem__(stamp_ns(m.header.stamp), m), 50)
        n.create_subscription(ChunkRequest, "chunk_request", self.requests.append, 50)
        n.create_subscription(ActionChunk, "action_chunk", self.chunks.append, 50)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        n.create_subscription(EpisodeStatus, "episode_status", self.statuses.append, latched)
        n.create_subscription(Clock, "/clock", lambda m: self.clock.append(stamp_ns(m.clock)), 50)
        self.chunk_pub = n.create_publisher(ActionChunk, "action_chunk", 10)
        self.select = n.create_client(LiberoReset, "/libero_bridge/select")

    def _image(self, camera: str, msg: Image) -> None:
        self.images[camera][stamp_ns(msg.header.stamp)] = msg

    def status(self, episode: int) -> EpisodeStatus | None:
        found = [s for s in self.statuses if s.episode == episode]
        return found[-1] if found else None

    def answer(self, request: ChunkRequest, rows: np.ndarray) -> None:
        msg = ActionChunk(names=list(ACTION_NAMES), action_space=ACTION_SPACE, dt=0.05, horizon=rows.shape[0], dim=7)
        msg.header.stamp = request.header.stamp
        msg.data = rows.astype(np.float32).ravel().tolist()
        self.chunk_pub.publish(msg)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from rynnvla_ros.inference.tiny_checkpoint import make_tiny_libero_checkpoint

    return make_tiny_libero_checkpoint(tmp_path_factory.mktemp("tiny_libero"), image_size=32, time_horizon=K)


def test_tiny_model_drives_a_libero_task_in_lockstep_and_a_forced_success_is_reported(ros_context, checkpoint):
    from rynnvla_ros.nodes.libero_bridge import LiberoBridgeNode
    from rynnvla_ros.nodes.policy import PolicyNode

    bridge = LiberoBridgeNode(
        context=ros_context,
        parameter_overrides=params(suite="libero_goal", task_id=0, init_state=0, max_steps=MAX_STEPS),
    )
    policy = PolicyNode(
        context=ros_context,
        cli_args=["--ros-args", "-r", "joint_states:=state"],
        parameter_overrides=params(
            checkpoint=str(checkpoint), trigger="request", dry_run=False, device="cpu", use_sim_time=True
        ),
    )
    probe = Probe(ros_context)
    bridge_spinner = NodeSpinner([bridge], ros_context)  # on a thread of its own, as in its own process
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (policy, probe.node):
        executor.add_node(node)
    calls = []  # what the model is given: the history is the previous step's frame, none at an episode's start
    model_call = policy.model.predict_chunk

    def predict_chunk(task, state, front, wrist, mode=None):
        calls.append((task, len(front), len(wrist), np.asarray(state).tolist()))
        return model_call(task, state, front, wrist, mode)

    policy.model.predict_chunk = predict_chunk
    try:
        # ---- episode 1: the model drives; the bridge waits for each chunk (3 requests, 3 chunks, 12 steps)
        assert spin_until(executor, lambda: (s := probe.status(1)) is not None and s.done, 240.0), probe.statuses[-1:]
        end = probe.status(1)
        assert (end.state, end.step, end.max_steps, end.wait_steps, end.chunks) == ("timeout", MAX_STEPS, 12, 10, 3)
        assert (end.suite, end.task_id, end.init_state, end.seed) == ("libero_goal", 0, 0, 0)
        assert end.task == "open the middle drawer of the cabinet"
        requests = sorted({stamp_ns(r.header.stamp) for r in probe.requests})
        assert len(requests) == 3 and np.diff(requests).tolist() == [K * DT_NS, K * DT_NS]
        assert all(r.task == end.task for r in probe.requests)
        # every chunk answers one request: same stamp, the LIBERO action space, not dry-run
        assert sorted(stamp_ns(c.header.stamp) for c in probe.chunks) == requests
        expected = (ACTION_SPACE, list(ACTION_NAMES), K, 7, False)
        for c in probe.chunks:
            assert (c.action_space, list(c.names), c.horizon, c.dim, c.dry_run) == expected
        # executed actions are the chunks' rows, whole chunks open-loop, the last one cut at max_steps
        ordered = sorted(probe.chunks, key=lambda c: stamp_ns(c.header.stamp))
        rows = np.concatenate([np.asarray(c.data, np.float32).reshape(K, 7) for c in ordered])
        np.testing.assert_allclose(bridge.runner.episode.actions, rows[:MAX_STEPS], atol=1e-7)
        # one observation per step (the first one after the wait steps, then one per executed row), 0.05 s apart
        stamps = sorted(probe.images["front"])
        assert len(stamps) == MAX_STEPS + 1 and set(np.diff(stamps)) == {DT_NS}
        assert stamps[0] == requests[0] and sorted(probe.images["wrist"]) == stamps == sorted(probe.states)
        assert probe.clock and probe.clock[-1] == stamps[-1] == stamp_ns(end.header.stamp)
        # images: 256 x 256 rgb8, the simulator's renders rotated by 180 degrees; state: 8-d, the simulator's
        raw = bridge.runner.observation.raw
        front, wrist = probe.images["front"][stamps[-1]], probe.images["wrist"][stamps[-1]]
        assert (front.width, front.height, front.encoding, front.header.frame_id) == (256, 256, "rgb8", "agentview")
        np.testing.assert_array_equal(image_to_rgb(front), rotate_180(raw["agentview_image"]))
        np.testing.assert_array_equal(image_to_rgb(wrist), rotate_180(raw["robot0_eye_in_hand_image"]))
        assert not np.array_equal(image_to_rgb(front), raw["agentview_image"])
        state = probe.states[stamps[-1]]
        assert list(state.name) == list(STATE_NAMES) and len(state.position) == 8
        np.testing.assert_allclose(state.position, observation_state(raw), atol=1e-12)
        np.testing.assert_array_equal(state.position[:3], raw["robot0_eef_pos"])
        np.testing.assert_array_equal(state.position[6:], raw["robot0_gripper_qpos"])
        assert policy.rejections.total == 0 and bridge.rejections.total == 0
        assert [c[:3] for c in calls] == [(end.task, 1, 1), (end.task, 2, 2), (end.task, 2, 2)]
        np.testing.assert_array_equal(calls[-1][3], probe.states[requests[-1]].position)

        # ---- episode 2: the probe answers instead of the model, after opening the drawer by hand
        executor.remove_node(policy)
        n_requests = len(probe.requests)
        future = probe.select.call_async(LiberoReset.Request(init_state=1))
        assert spin_until(executor, future.done, 120.0)
        response = future.result()
        assert response.success and (response.episode, response.max_steps, response.wait_steps) == (2, 12, 10)
        assert spin_until(executor, lambda: len(probe.requests) > n_requests, 30.0)
        request = probe.requests[-1]
        assert probe.status(2).state == "running" and probe.status(2).init_state == 1
        assert any(s.state == "resetting" and s.episode == 2 and s.init_state == 1 for s in probe.statuses)
        bridge.runner.env.set_joint_positions({DRAWER: -0.16})  # the bridge waits for the chunk: safe to touch
        hold = np.zeros((K, 7))
        hold[:, -1] = -1.0
        stale = ChunkRequest()
        stale.header.stamp.sec = 1  # a chunk answering no pending request is ignored
        probe.answer(stale, hold)
        probe.answer(request, hold)
        assert spin_until(executor, lambda: (s := probe.status(2)) is not None and s.done, 60.0)
        done = probe.status(2)
        assert (done.state, done.success, done.step, done.chunks) == ("success", True, 1, 1)
        assert bridge.rejections.counts == {"unrequested_chunk": 1}

        # bad input is refused with the reason; the bridge keeps its task and goes on
        future = probe.select.call_async(LiberoReset.Request(task_id=99))
        assert spin_until(executor, future.done, 60.0)
        assert not future.result().success and "has tasks 0..9, not 99" in future.result().message
        joints = ActionChunk(names=["a"], action_space="joint_positions", dt=0.05, horizon=1, dim=1, data=[0.0])
        probe.chunk_pub.publish(joints)
        assert spin_until(executor, lambda: "wrong_action_space" in bridge.rejections.counts, 10.0)
        assert bridge.selection.task_id == 0 and bridge.runner.env.task_id == 0
    finally:
        del policy.model.predict_chunk  # the model object is shared through the process's model cache
        executor.shutdown()
        bridge_spinner.stop()
        policy.close()
        bridge.close()
        for node in (bridge, policy, probe.node):
            node.destroy_node()


def test_realtime_mode_steps_without_waiting_and_executes_the_policys_chunks(ros_context, checkpoint):
    from rynnvla_ros.nodes.libero_bridge import LiberoBridgeNode
    from rynnvla_ros.nodes.policy import PolicyNode

    bridge = LiberoBridgeNode(
        context=ros_context,
        parameter_overrides=params(lockstep=False, max_steps=8, wait_steps=0, image_size=64, rate=20.0),
    )
    policy = PolicyNode(
        context=ros_context,
        cli_args=["--ros-args", "-r", "joint_states:=state"],
        parameter_overrides=params(
            checkpoint=str(checkpoint), trigger="frame", dry_run=False, device="cpu", use_sim_time=True
        ),
    )
    probe = Probe(ros_context)
    bridge_spinner = NodeSpinner([bridge], ros_context)  # on a thread of its own, as in its own process
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (policy, probe.node):
        executor.add_node(node)
    try:
        assert spin_until(executor, lambda: (s := probe.status(1)) is not None and s.done, 180.0)
        episode = bridge.runner.episode
        assert (episode.state, episode.step) == ("timeout", 8)
        assert not probe.requests and bridge.requests == 0  # nobody is asked; the simulator does not wait
        # the policy saw the frames (stamped in simulation time, which its clock follows) and its chunks were
        # executed: every executed action is a chunk row, or the hold action (no motion) when no row was due
        assert episode.chunks >= 1 and probe.chunks
        rows = {tuple(np.float32(r).tolist()) for c in probe.chunks for r in np.asarray(c.data).reshape(-1, 7)}
        executed = [tuple(np.float32(a).tolist()) for a in episode.actions]
        assert all(a in rows or not any(a[:6]) for a in executed) and any(a in rows for a in executed)
        assert probe.images["front"][max(probe.images["front"])].width == 64
    finally:
        executor.shutdown()
        bridge_spinner.stop()
        policy.close()
        bridge.close()
        for node in (bridge, policy, probe.node):
            node.destroy_node()
