"""The ``so100_expert`` node with real rclpy against a stand-in controller: a task reset that gets no answer in time
is asked again (same seed), and when the expert cannot go on it stops with ``exit_code`` 1 (the process's status);
with ``execution_noise`` the executed trajectory leaves the plan while the recorded target follows it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import rclpy
from conftest import spin_until
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter
from rynnvla_ros.srv import TaskReset
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.node_runner import exit_code
from rynnvla_ros.nodes.expert import So100ExpertNode
from rynnvla_ros.tasks.block_in_circle import TASK_TEXT, sample_layout

pytestmark = [pytest.mark.ros, pytest.mark.sim]


class StandInController:
    """``/so100_controller/reset_task`` that answers the first request too late and refuses the later ones;
    publishes the arm's joint states so the expert starts."""

    def __init__(self, context, first_delay: float, refuse: bool = True) -> None:
        self.node = rclpy.create_node("so100_controller", context=context)
        self.first_delay = first_delay
        self.refuse = refuse
        self.seeds: list[int] = []
        self._lock = threading.Lock()
        self.node.create_service(TaskReset, "~/reset_task", self._reset, callback_group=ReentrantCallbackGroup())
        self.pub = self.node.create_publisher(JointState, "joint_states", 10)
        self.node.create_timer(0.05, self._publish)

    def _publish(self) -> None:
        self.pub.publish(JointState(name=list(desc.JOINT_NAMES), position=[0.0] * len(desc.JOINT_NAMES)))

    def _reset(self, request: TaskReset.Request, response: TaskReset.Response) -> TaskReset.Response:
        with self._lock:
            self.seeds.append(int(request.seed))
            first = len(self.seeds) == 1
        if first:
            time.sleep(self.first_delay)
        if self.refuse:
            response.success = False
            response.message = "stand-in: no task here"
            return response
        layout = sample_layout(int(request.seed))
        response.success, response.task = True, TASK_TEXT
        response.block = [*layout.block_xy, layout.block_yaw]
        response.target = list(layout.target_xy)
        return response


@contextmanager
def expert_running(ros_context, others: list, **params) -> Iterator[tuple[So100ExpertNode, SingleThreadedExecutor]]:
    """An ``so100_expert`` (not recording, not exiting; ``params`` on top) in one executor with ``others`` nodes,
    all destroyed afterwards."""
    params = {"record": False, "exit_when_done": False, **params}
    expert = So100ExpertNode(
        context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (expert, *others):
        executor.add_node(node)
    try:
        yield expert, executor
    finally:
        executor.shutdown(timeout_sec=1.0)
        expert.close()
        for node in (expert, *others):
            node.destroy_node()


@contextmanager
def spinning_concurrently(node) -> Iterator[None]:
    """Spin ``node`` on rclpy's multi-threaded executor in a background thread (its callbacks may overlap), then
    destroy it."""
    executor = MultiThreadedExecutor(context=node.context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        executor.shutdown(timeout_sec=5.0)
        thread.join(5.0)
        node.destroy_node()


def test_a_late_reset_is_asked_again_and_a_refusal_stops_with_exit_code_1(ros_context) -> None:
    controller = StandInController(ros_context, first_delay=3.0)
    # the stand-in answers the second request while its first answer sleeps: it needs overlapping callbacks
    with (
        spinning_concurrently(controller.node),
        expert_running(ros_context, [], seed=7, service_timeout=0.5) as (expert, executor),
    ):
        assert spin_until(executor, lambda: expert.exit_code == 1, timeout=20.0), controller.seeds
        # the first request timed out after 0.5 s (answered at 3 s: slack for a stalled machine); the second, same
        # seed, was refused
        assert controller.seeds == [7, 7]
        assert expert.results == []
        assert exit_code([controller.node, expert]) == 1  # what rynnvla-bringup and so100_expert return


def test_reset_attempts_must_be_positive(ros_context) -> None:
    with pytest.raises(ValueError, match="reset_attempts"):
        So100ExpertNode(context=ros_context, parameter_overrides=[Parameter("reset_attempts", value=0)])


def test_execution_noise_moves_the_executed_trajectory_off_the_recorded_target(ros_context) -> None:
    """Each tick publishes the target (plan at t) and the trajectory (plan + offset from t + lookahead) with one
    stamp; t is recovered from the target, so the check does not depend on message timing. Each message is kept
    with the episode playing when it arrived (a slow machine may reach the next episode before enough arrive); a
    target that is not on that episode's plan (it arrived after the switch) is left out."""
    controller = StandInController(ros_context, first_delay=0.0, refuse=False)
    listener = rclpy.create_node("listener", context=ros_context)
    targets: dict[tuple[int, int], tuple[list[float], tuple | None]] = {}
    trajectories: dict[tuple[int, int], JointTrajectory] = {}
    running: list[So100ExpertNode] = []  # the expert, once it exists

    def key(msg) -> tuple[int, int]:
        return msg.header.stamp.sec, msg.header.stamp.nanosec

    def on_target(msg: JointState) -> None:
        targets[key(msg)] = (msg.position, running[0]._plan if running else None)

    listener.create_subscription(JointState, "leader_joint_states", on_target, 50)
    listener.create_subscription(JointTrajectory, "joint_trajectory", lambda m: trajectories.update({key(m): m}), 50)
    nodes = [controller.node, listener]
    with expert_running(ros_context, nodes, seed=3, settle_time=0.1, execution_noise=0.04) as (expert, executor):
        running.append(expert)
        assert spin_until(executor, lambda: len(targets.keys() & trajectories.keys()) >= 50, timeout=60.0)
        worst_gripper, largest_offset, checked = 0.0, 0.0, 0
        sampled: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per episode: a 0.5 ms grid and the plan on it
        for k in sorted(targets.keys() & trajectories.keys()):
            target, playing = targets[k]
            if playing is None:
                continue
            plan, noise = playing[1:]
            if id(plan) not in sampled:
                grid = np.arange(0.0, plan.duration, 0.0005)
                sampled[id(plan)] = grid, plan.at(grid)
            grid, on_grid = sampled[id(plan)]
            distance = np.abs(on_grid - np.asarray(target)).sum(axis=1)
            if distance.min() > 0.02:
                continue  # published by the episode before
            t = grid[np.argmin(distance)]
            if np.abs(plan.at(t + 0.01) - plan.at(t - 0.01)).sum() < 0.004:
                continue  # the plan barely moves here, so the target does not tell t
            checked += 1
            points = trajectories[k].points
            due = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in points])
            offset = np.array([p.positions for p in points]) - plan.at(t + due)
            np.testing.assert_allclose(offset, noise.at(t + due), atol=2e-3)
            worst_gripper = max(worst_gripper, float(np.abs(offset[:, 5]).max()))
            largest_offset = max(largest_offset, float(np.abs(offset[:, :5]).max()))
        assert checked >= 25
        assert worst_gripper < 2e-3  # the gripper follows the plan
        assert largest_offset > 0.01  # the arm does not
