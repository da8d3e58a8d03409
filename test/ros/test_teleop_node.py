"""The ``so100_leader_teleop`` node with real rclpy: without a leader it stays up, logs and retries; with one
(a stand-in object for the bus) it publishes the leader's radians, and the simulated follower tracks them."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from conftest import node_executable, spin_until
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from rynnvla_ros import topics
from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.leader_arm import LeaderArm, LeaderConfig
from rynnvla_ros.nodes.teleop import So100LeaderTeleopNode

pytest.importorskip("lerobot")
REMAP_STATES = f"joint_states:={topics.LEADER_JOINT_STATES}"
REMAP_TRAJECTORY = f"joint_trajectory:={topics.JOINT_TRAJECTORY}"
_CONTROL = Path(__file__).resolve().parents[1] / "control"


def _stand_in():
    """test/control/leader_stand_in.py: an object with SOLeader's interface in place of the bus."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("leader_stand_in", _CONTROL / "leader_stand_in.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Probe:
    """Listens to the teleop node's outputs."""

    def __init__(self, context) -> None:
        self.node = rclpy.create_node("teleop_probe", context=context)
        self.states: list[JointState] = []
        self.trajectories: list[JointTrajectory] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(JointState, topics.LEADER_JOINT_STATES, self.states.append, 100)
        self.node.create_subscription(JointTrajectory, topics.JOINT_TRAJECTORY, self.trajectories.append, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 100)

    def leader_status(self) -> list:
        return [s for d in self.diagnostics for s in d.status if s.name == "so100_leader_teleop: leader arm"]


def _attempt(status) -> int:
    text = status.message
    return int(text.split("attempt ")[1].split(",")[0]) if "attempt " in text else 0


@pytest.mark.ros
def test_without_a_leader_the_node_stays_up_logs_and_retries(ros_context, start_process, tmp_path: Path) -> None:
    stand_in = _stand_in()
    stand_in.write_calibration(tmp_path, "leader")
    port = tmp_path / "ttyACM9"  # no such device
    proc = start_process(
        node_executable("so100_leader_teleop"),
        "--ros-args",
        *("-p", f"port:={port}", "-p", "leader_id:=leader", "-p", f"calibration_dir:={tmp_path}"),
        *("-p", "retry_period:=0.2", "-p", "max_retry_period:=0.4", "-p", "diagnostics_period:=0.2"),
        *("-r", REMAP_STATES, "-r", REMAP_TRAJECTORY),
    )
    probe = Probe(ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(probe.node)
    # several attempts, seen in its diagnostics, while the process stays up and publishes no joint state
    assert spin_until(executor, lambda: any(_attempt(s) >= 4 for s in probe.leader_status()), 60), proc.poll()
    assert proc.poll() is None
    statuses = probe.leader_status()
    assert all(s.level == b"\x02" for s in statuses)  # ERROR while there is no leader
    assert f"cannot open the SO100 leader bus on {port}" in statuses[-1].message
    assert "next in 0.4 s" in statuses[-1].message  # backed off to max_retry_period
    assert probe.states == [] and probe.trajectories == []
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"cannot open the SO100 leader bus on {port}" in out and "retrying in 0.2 s" in out


@pytest.mark.ros
def test_leader_readings_become_joint_states_and_trajectories(ros_context, tmp_path: Path) -> None:
    stand_in = _stand_in()
    device = stand_in.StandInLeader()
    device.allow.clear()  # the bus does not answer yet
    stand_in.write_calibration(tmp_path, "leader")
    arm = LeaderArm(
        LeaderConfig(port="/dev/ttyACM9", leader_id="leader", calibration_dir=str(tmp_path)),
        make_device=lambda _cfg, _dir: device,
    )
    node = So100LeaderTeleopNode(
        arm=arm,
        context=ros_context,
        cli_args=["--ros-args", "-r", REMAP_STATES, "-r", REMAP_TRAJECTORY],
        parameter_overrides=[
            Parameter("retry_period", value=0.1),
            Parameter("max_retry_period", value=0.2),
            Parameter("lookahead", value=0.25),
            Parameter("rate", value=50.0),
        ],
    )
    probe = Probe(ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(probe.node)
    try:
        spin_until(executor, lambda: len(device.connect_times) >= 3, 20)
        assert probe.states == [] and probe.trajectories == []  # nothing before the first reading
        device.allow.set()
        assert spin_until(executor, lambda: len(probe.trajectories) >= 10 and len(probe.states) >= 10, 30)
    finally:
        node.close()
        node.destroy_node()
    expected = stand_in.expected_radians()
    state = probe.states[-1]
    assert list(state.name) == list(desc.JOINT_NAMES)
    np.testing.assert_allclose(state.position, expected)
    traj = probe.trajectories[-1]
    assert list(traj.joint_names) == list(desc.JOINT_NAMES) and len(traj.points) == 1
    np.testing.assert_allclose(traj.points[0].positions, expected)
    assert (traj.points[0].time_from_start.sec, traj.points[0].time_from_start.nanosec) == (0, 250_000_000)
    stamps = {(s.header.stamp.sec, s.header.stamp.nanosec) for s in probe.states}
    assert (traj.header.stamp.sec, traj.header.stamp.nanosec) in stamps  # the reading's time on both
    assert abs(traj.header.stamp.sec + traj.header.stamp.nanosec * 1e-9 - time.time()) < 60


@pytest.mark.ros
@pytest.mark.sim
def test_the_simulated_follower_tracks_the_leader(ros_context, tmp_path: Path) -> None:
    """Teleop and so100_controller (MuJoCo twin, no cameras) in one executor: the follower's commands reach the
    leader's pose and the measured joints follow."""
    from rynnvla_ros.control.sim_backend import SimBackend, SimConfig
    from rynnvla_ros.nodes.so100_controller import So100ControllerNode

    stand_in = _stand_in()
    device = stand_in.StandInLeader()
    stand_in.write_calibration(tmp_path, "leader")
    arm = LeaderArm(LeaderConfig(leader_id="leader", calibration_dir=str(tmp_path)), make_device=lambda *_: device)
    teleop = So100LeaderTeleopNode(
        arm=arm,
        context=ros_context,
        cli_args=["--ros-args", "-r", REMAP_STATES],
    )
    controller = So100ControllerNode(
        backend=SimBackend(SimConfig(cameras=())),
        context=ros_context,
        parameter_overrides=[Parameter("ramp_time", value=0.2), Parameter("max_velocity", value=2.0)],
    )
    commands: list[JointState] = []
    states: list[JointState] = []
    probe = rclpy.create_node("follower_probe", context=ros_context)
    probe.create_subscription(JointState, "/joint_command", commands.append, 200)
    probe.create_subscription(JointState, "/joint_states", states.append, 200)
    executor = SingleThreadedExecutor(context=ros_context)
    for n in (teleop, controller, probe):
        executor.add_node(n)
    target = stand_in.expected_radians()
    try:
        assert spin_until(executor, lambda: len(states) > 0, 60)
        start = np.array(states[0].position)
        reached = spin_until(
            executor, lambda: bool(commands) and np.allclose(commands[-1].position, target, atol=1e-3), 60
        )
        assert reached, f"last command {commands[-1].position if commands else None}, target {target}"
        spin_until(executor, lambda: False, 1.0)  # let the arm settle
    finally:
        teleop.close()
        controller.close()
    measured = np.array(states[-1].position)
    assert np.abs(measured - target).max() < 0.5 * np.abs(start - target).max()  # moved most of the way
