"""The ``so100_expert`` node with real rclpy against a stand-in controller: a task reset that gets no answer in time
is asked again (same seed), and when the expert cannot go on it stops with ``exit_code`` 1 (the process's status)."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from conftest import spin_until
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rynnvla_ros.srv import TaskReset
from sensor_msgs.msg import JointState

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.node_runner import exit_code
from rynnvla_ros.nodes.expert import So100ExpertNode

pytestmark = [pytest.mark.ros, pytest.mark.sim]


class StandInController:
    """``/so100_controller/reset_task`` that answers the first request too late and refuses the later ones;
    publishes the arm's joint states so the expert starts."""

    def __init__(self, context, first_delay: float) -> None:
        self.node = rclpy.create_node("so100_controller", context=context)
        self.first_delay = first_delay
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
        response.success = False
        response.message = "stand-in: no task here"
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
