"""The ``so100_expert`` node with real rclpy against a stand-in controller: a task reset that gets no answer in time
is asked again (same seed), and when the expert cannot go on it stops with ``exit_code`` 1 (the process's status);
with ``execution_noise`` the executed trajectory leaves the plan while the recorded target follows it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from conftest import spin_until
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
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


def test_a_late_reset_is_asked_again_and_a_refusal_stops_with_exit_code_1(ros_context) -> None:
    controller = StandInController(ros_context, first_delay=1.5)
    expert = So100ExpertNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("seed", value=7),
            Parameter("record", value=False),
            Parameter("service_timeout", value=0.5),
            Parameter("exit_when_done", value=False),
        ],
    )
    executor = MultiThreadedExecutor(context=ros_context)
    executor.add_node(controller.node)
    executor.add_node(expert)
    try:
        assert spin_until(executor, lambda: expert.exit_code == 1, timeout=20.0), controller.seeds
        # the first request timed out after 0.5 s (answered at 1.5 s); the second, same seed, was refused
        assert controller.seeds == [7, 7]
        assert expert.results == []
        assert exit_code([controller.node, expert]) == 1  # what rynnvla-bringup and so100_expert return
    finally:
        executor.shutdown(timeout_sec=1.0)
        expert.close()
        expert.destroy_node()
        controller.node.destroy_node()


def test_reset_attempts_must_be_positive(ros_context) -> None:
    with pytest.raises(ValueError, match="reset_attempts"):
        So100ExpertNode(context=ros_context, parameter_overrides=[Parameter("reset_attempts", value=0)])


def test_execution_noise_moves_the_executed_trajectory_off_the_recorded_target(ros_context) -> None:
    controller = StandInController(ros_context, first_delay=0.0, refuse=False)
    expert = So100ExpertNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("seed", value=3),
            Parameter("record", value=False),
            Parameter("settle_time", value=0.1),
            Parameter("execution_noise", value=0.04),
            Parameter("exit_when_done", value=False),
        ],
    )
    listener = rclpy.create_node("listener", context=ros_context)
    targets: list[tuple[float, list[float]]] = []  # (stamp s, leader target)
    executed: list[tuple[float, list[float]]] = []  # (due s, first trajectory point)

    def stamp(msg) -> float:
        return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec

    listener.create_subscription(
        JointState, "leader_joint_states", lambda m: targets.append((stamp(m), m.position)), 50
    )

    def on_trajectory(m: JointTrajectory) -> None:
        due = m.points[0].time_from_start
        executed.append((stamp(m) + due.sec + 1e-9 * due.nanosec, m.points[0].positions))

    listener.create_subscription(JointTrajectory, "joint_trajectory", on_trajectory, 50)
    executor = MultiThreadedExecutor(context=ros_context)
    for node in (controller.node, expert, listener):
        executor.add_node(node)
    try:
        assert spin_until(executor, lambda: len(executed) >= 150, timeout=30.0)  # 3 s of the reach at 50 Hz
        t, q = np.array([s for s, _ in targets]), np.array([p for _, p in targets])
        due, points = np.array([s for s, _ in executed]), np.array([p for _, p in executed])
        keep = (due > t[0]) & (due < t[-1])
        planned = np.stack([np.interp(due[keep], t, q[:, j]) for j in range(6)], axis=1)
        offset = points[keep] - planned
        assert np.abs(offset[:, 5]).max() < 1e-3  # the gripper follows the plan
        assert 0.01 < np.abs(offset[:, :5]).max() < 0.25
    finally:
        executor.shutdown(timeout_sec=1.0)
        expert.close()
        for node in (expert, controller.node, listener):
            node.destroy_node()
