"""The ``so100_controller`` node with real rclpy: the simulated arm in a subprocess, probed over ROS topics/services.

One simulated controller serves the tests of this module in order (each leaves it holding, e-stop released).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from conftest import node_executable, spin_until
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rynnvla_ros.msg import ActionChunk
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

import rynnvla_ros.nodes.so100_controller as so100_controller_module
from rynnvla_ros.control.backend import Backend, BackendError, JointReading
from rynnvla_ros.control.so100_description import JOINT_NAMES, REST_POSITIONS, joint_limits
from rynnvla_ros.nodes.so100_controller import So100ControllerNode

ROOT = Path(__file__).resolve().parents[2]

RATE, MAX_VELOCITY, MAX_STEP, TIMEOUT = 100.0, 2.0, 0.05, 1.5
HOME = np.array([0.2, -0.9, 0.9, 0.6, 0.0, 0.3])
SIM_ARGS = {
    "hardware": "sim",
    "control_rate": RATE,
    "max_velocity": MAX_VELOCITY,
    "max_step": MAX_STEP,
    "command_timeout": TIMEOUT,
    "ramp_time": 0.3,
    "camera_rate": 10.0,
    "image_width": 64,
    "image_height": 48,
    "diagnostics_period": 0.2,
}


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Probe:
    """A node that talks to the controller: records its outputs, sends chunks, calls its services."""

    def __init__(self, context, prefix: str = "") -> None:
        self.node = rclpy.create_node("controller_probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.states: list[JointState] = []
        self.commands: list[JointState] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.images: dict[str, list[Image]] = {"front": [], "wrist": []}
        self.infos: list[CameraInfo] = []
        n = self.node
        n.create_subscription(JointState, f"{prefix}/joint_states", self.states.append, 200)
        n.create_subscription(JointState, f"{prefix}/joint_command", self.commands.append, 200)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)
        for cam, sink in self.images.items():
            n.create_subscription(Image, f"/{cam}/image_raw", sink.append, 10)
        n.create_subscription(CameraInfo, "/front/camera_info", self.infos.append, 10)
        self.chunk_pub = n.create_publisher(ActionChunk, f"{prefix}/action_chunk", 10)
        self.traj_pub = n.create_publisher(JointTrajectory, f"{prefix}/joint_trajectory", 10)
        self.seq = 0

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def spin(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def until(self, predicate, timeout: float, what: str) -> None:
        assert spin_until(self.executor, predicate, timeout), f"timed out after {timeout} s waiting for {what}"

    def measured(self) -> np.ndarray:
        return np.array(self.states[-1].position)

    def diag(self, name: str = "so100_controller: arm") -> dict[str, str]:
        for msg in reversed(self.diagnostics):
            for status in msg.status:
                if status.name == name:
                    return {"level": int.from_bytes(status.level, "little"), "message": status.message} | {
                        kv.key: kv.value for kv in status.values
                    }
        return {}

    def fresh_diag(self, name: str = "so100_controller: arm") -> dict[str, str]:
        """Diagnostics published after this call."""
        n = len(self.diagnostics)
        self.until(lambda: any(s.name == name for m in self.diagnostics[n:] for s in m.status), 5, "diagnostics")
        return self.diag(name)

    def chunk(self, rows, dt=0.1, start_step=1, stamp=None, names=JOINT_NAMES, space="joint_positions", **fields):
        rows = np.atleast_2d(np.asarray(rows, dtype=float))
        msg = ActionChunk()
        t = self.now() if stamp is None else stamp
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t % 1) * 1e9)
        msg.names, msg.action_space = list(names), space
        msg.dt, msg.start_step, msg.horizon, msg.dim = dt, start_step, rows.shape[0], rows.shape[1]
        msg.data = rows.ravel().tolist()
        self.seq += 1
        msg.seq = self.seq
        for k, v in fields.items():
            setattr(msg, k, v)
        self.chunk_pub.publish(msg)

    def call(self, service: str) -> Trigger.Response:
        client = self.node.create_client(Trigger, service)
        try:
            self.until(client.service_is_ready, 10, f"service {service}")
            future = client.call_async(Trigger.Request())
            self.until(future.done, 10, f"{service} response")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def commands_since(self, t: float) -> np.ndarray:
        return np.array([c.position for c in self.commands if _seconds(c.header.stamp) >= t])

    def settle_at(self, target: np.ndarray, tol: float = 0.05, timeout: float = 8.0) -> None:
        ok = spin_until(self.executor, lambda: np.abs(self.measured() - target).max() < tol, timeout)
        assert ok, (
            f"the arm did not reach {target} in {timeout} s: measured {self.measured()}, "
            f"command {np.array(self.commands[-1].position)}, diagnostics {self.diag()}"
        )

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.communicate(timeout=15)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture(scope="module")
def sim(context):
    """The simulated controller (subprocess) and a probe that has seen it publish."""
    probe = Probe(context)
    args = [a for k, v in SIM_ARGS.items() for a in ("-p", f"{k}:={v}")]
    proc = subprocess.Popen(
        [str(node_executable("so100_controller")), "--ros-args", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        probe.until(lambda: len(probe.states) > 20 or proc.poll() is not None, 60, "joint states")
        assert proc.poll() is None, f"controller exited:\n{_stop(proc)}"
        probe.until(lambda: probe.diag().get("state") == "holding position", 10, "holding")
        probe.spin(0.3)  # ramp-in over
        yield probe
    finally:
        probe.close()
        output = _stop(proc)
        print(output)
        assert "Traceback" not in output


@pytest.fixture
def at_home(sim):
    """The arm moved to HOME and settled, e-stop released."""
    if sim.diag().get("estop") == "true":
        sim.call("/so100_controller/reset")
    sim.chunk(np.tile(HOME, (3, 1)), dt=0.4)
    sim.settle_at(HOME)
    sim.spin(0.2)
    return sim


def test_joint_states_at_50_hz_or_more_and_no_snap(sim):
    n = len(sim.states)
    sim.spin(2.0)
    states = sim.states[n:]
    stamps = np.array([_seconds(m.header.stamp) for m in states])
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert rate >= 50.0, f"joint_states at {rate:.1f} Hz"
    assert list(states[-1].name) == list(JOINT_NAMES) and len(states[-1].velocity) == 6
    # before any chunk the command is the measured rest pose (no jump to zero or anywhere else)
    by_stamp = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec: np.array(m.position) for m in sim.states}
    first = sim.commands[: len(sim.commands) // 2 or 1]
    for cmd in first:
        measured = by_stamp.get(cmd.header.stamp.sec * 10**9 + cmd.header.stamp.nanosec)
        if measured is not None:
            assert np.abs(np.array(cmd.position) - measured).max() < 0.05
    np.testing.assert_allclose(sim.commands[-1].position, REST_POSITIONS, atol=0.05)
    print(f"joint_states {rate:.1f} Hz")


def test_simulated_cameras_publish_images_and_intrinsics(sim):
    sim.until(lambda: all(len(v) >= 3 for v in sim.images.values()) and sim.infos, 10, "images")
    for cam, frames in sim.images.items():
        img = frames[-1]
        assert (img.width, img.height, img.encoding) == (64, 48, "rgb8")
        assert img.header.frame_id == f"{cam}_camera_optical_frame"
    info = sim.infos[-1]
    assert info.k[0] > 0 and info.k[0] == info.k[4] and (info.k[2], info.k[5]) == (32.0, 24.0)
    assert float(sim.fresh_diag()["camera_rate_hz"]) > 5.0


def test_a_chunk_is_executed(at_home):
    sim = at_home
    target = HOME + np.array([0.3, 0.2, -0.2, 0.2, 0.4, 0.4])
    rows = HOME + np.linspace(0.1, 1.0, 10)[:, None] * (target - HOME)
    t0 = sim.now()
    sim.chunk(rows, dt=0.1)
    sim.settle_at(target, tol=0.05, timeout=5)
    sim.spin(0.2)
    cmds = sim.commands_since(t0)
    np.testing.assert_allclose(cmds[-1], target, atol=1e-6)
    assert np.abs(np.diff(cmds, axis=0)).max() <= MAX_STEP + 1e-9
    assert np.abs(sim.measured() - target).max() < 0.05


def test_steps_already_past_are_skipped(at_home):
    sim = at_home
    before = int(sim.fresh_diag()["skipped_steps"])
    far = HOME + np.array([0.8, 0.0, 0.0, 0.0, 0.0, 0.0])
    near = HOME + np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.0])
    t0 = sim.now()
    # rows 0..8 (`far`) were due 0.9 .. 0.1 s ago, row 9 (`near`, like the rest) is due as the chunk is sent
    sim.chunk(np.vstack([np.tile(far, (9, 1)), np.tile(near, (6, 1))]), dt=0.1, start_step=0, stamp=t0 - 0.9)
    sim.settle_at(near, timeout=5)
    sim.spin(0.3)
    assert np.abs(sim.commands_since(t0)[:, 0] - HOME[0]).max() <= 0.1 + 1e-6  # never towards `far`
    # rows 0..9 were due when the chunk was sent; each 0.1 s it takes to arrive (a loaded CPU) makes one more row past
    skipped = int(sim.fresh_diag()["skipped_steps"]) - before
    assert 10 <= skipped <= 14, skipped


def test_a_new_chunk_is_blended_into_the_one_in_progress(at_home):
    sim = at_home
    x = HOME + np.array([0.6, 0.0, 0.0, 0.0, 0.0, 0.0])
    y = HOME + np.array([0.0, 0.3, 0.0, 0.0, 0.0, 0.0])
    t0 = sim.now()
    sim.chunk(HOME + np.linspace(0.05, 1.0, 20)[:, None] * (x - HOME), dt=0.1)  # 2 s towards x
    sim.spin(0.8)
    sim.chunk(np.tile(y, (10, 1)), dt=0.1)  # half way: change of plan
    sim.settle_at(y, timeout=6)
    sim.spin(0.2)
    cmds = sim.commands_since(t0)
    assert np.abs(np.diff(cmds, axis=0)).max() <= MAX_STEP + 1e-9  # continuous through the switch
    assert cmds[:, 0].max() > HOME[0] + 0.1  # the first chunk ran
    np.testing.assert_allclose(cmds[-1], y, atol=1e-6)


def test_malformed_chunks_are_rejected_and_the_node_keeps_running(at_home):
    sim = at_home
    before = int(sim.fresh_diag()["rejected_chunks"])
    rows = np.tile(HOME, (3, 1))
    sim.chunk(np.full((3, 6), np.nan))
    sim.chunk(np.zeros((2000, 6)))  # oversized
    sim.chunk(rows, dim=5)  # wrong dimension
    sim.chunk(rows, names=[*JOINT_NAMES[:5], "elbow"])  # unknown joint
    sim.chunk(rows, space=ActionChunk.ACTION_SPACE_EEF_DELTA_GRIPPER)
    sim.chunk(np.tile(np.degrees(HOME), (3, 1)))  # degrees instead of radians
    sim.until(lambda: int(sim.diag().get("rejected_chunks", 0)) - before == 6, 5, "6 rejections")
    assert "degrees" in sim.diag()["last_rejection"]
    n = len(sim.states)
    sim.spin(0.5)
    assert len(sim.states) - n > 0.5 * 0.5 * RATE  # still publishing
    np.testing.assert_allclose(sim.commands[-1].position, HOME, atol=1e-6)  # nothing moved
    sim.chunk(np.tile(HOME + 0.1, (10, 1)), dt=0.2)  # 2 s: still current if delivery is slow
    sim.settle_at(HOME + 0.1, timeout=5)


def test_a_chunk_beyond_a_joint_limit_is_clipped(at_home):
    sim = at_home
    upper = joint_limits().upper[0]
    target = HOME.copy()
    target[0] = upper + 0.6
    t0 = sim.now()

    def at_limit() -> bool:  # a fresh chunk now and then, as a policy sends them, so no command timeout interferes
        if abs(sim.commands[-1].position[0] - upper) < 1e-9:
            return True
        sim.chunk(np.tile(target, (5, 1)), dt=0.2)
        sim.spin(0.3)
        return False

    sim.until(at_limit, 10, "the command at the limit")
    sim.spin(1.0)
    assert sim.commands_since(t0)[:, 0].max() <= upper + 1e-9
    assert sim.measured()[0] <= upper + 0.03
    assert int(sim.fresh_diag()["clipped_chunks"]) >= 1


def test_silent_publisher_holds_within_the_timeout_without_a_jump(at_home):
    sim = at_home
    t0 = sim.now()
    sim.chunk(HOME + np.linspace(0.02, 1.0, 50)[:, None] * np.array([0.6, 0, 0, 0, 0, 0]), dt=0.1)  # 5 s motion
    sim.spin(TIMEOUT + 1.2)
    cmds = sim.commands_since(t0)
    stamps = np.array([_seconds(c.header.stamp) for c in sim.commands if _seconds(c.header.stamp) >= t0])
    moving = np.abs(np.diff(cmds, axis=0)).max(axis=1) > 1e-12
    started, stopped = stamps[1:][moving].min(), stamps[1:][moving].max()
    # the hold starts TIMEOUT after the chunk was accepted (= when motion started); 0.3 s of slack for a loaded CPU
    assert stopped - started < TIMEOUT + 0.3, f"still moving {stopped - started:.2f} s after the chunk arrived"
    assert cmds[-1][0] > HOME[0] + 0.02  # it had moved before holding
    assert np.abs(np.diff(cmds, axis=0)).max() <= MAX_STEP + 1e-9  # no jump
    assert np.abs(sim.measured() - cmds[-1]).max() < 0.05  # the arm holds there
    assert int(sim.fresh_diag()["command_timeouts"]) >= 1


def test_estop_stops_within_one_control_period_and_latches_until_reset(at_home):
    sim = at_home
    sim.chunk(HOME + np.linspace(0.05, 1.0, 20)[:, None] * np.array([0.6, 0, 0, 0, 0, 0]), dt=0.1)
    sim.spin(0.5)
    sent = sim.now()
    response = sim.call("/so100_controller/estop")
    answered = sim.now()
    assert response.success and "latched" in response.message
    sim.until(lambda: len(sim.commands_since(answered + 1.0 / RATE)) > 30, 5, "commands after the e-stop")
    held = sim.commands_since(answered + 1.0 / RATE)
    assert np.all(held == held[0]), "commands changed after the e-stop"
    moving = sim.commands_since(sent - 0.2)
    assert np.abs(moving[0] - held[0]).max() > 0  # it was moving when stopped
    sim.chunk(np.tile(HOME + 0.2, (5, 1)))  # refused while latched
    sim.spin(0.8)
    assert np.all(sim.commands_since(answered + 1.0 / RATE) == held[0])
    diag = sim.fresh_diag()
    assert diag["estop"] == "true" and diag["level"] == 2 and "e-stop" in diag["last_rejection"]
    response = sim.call("/so100_controller/reset")
    assert response.success
    sim.chunk(np.tile(HOME, (10, 1)), dt=0.2)  # 2 s: still current if delivery is slow
    sim.settle_at(HOME, timeout=6)
    assert sim.fresh_diag()["estop"] == "false"


def test_joint_trajectory_input(at_home):
    sim = at_home
    target = HOME + 0.15
    msg = JointTrajectory()
    msg.joint_names = list(JOINT_NAMES[::-1])
    point = JointTrajectoryPoint(positions=list(target[::-1]))
    point.time_from_start.sec, point.time_from_start.nanosec = 0, 500_000_000
    msg.points = [point]
    sim.traj_pub.publish(msg)  # stamp 0: from now
    sim.settle_at(target, timeout=5)


def test_lerobot_arm_absent_gives_a_clear_error_retries_and_never_commands(context, tmp_path):
    calibration = {n: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 1000, "range_max": 3000}
                   for i, n in enumerate(JOINT_NAMES)}  # fmt: skip
    (tmp_path / "arm.json").write_text(json.dumps(calibration))
    port = tmp_path / "ttyACM9"
    probe = Probe(context, prefix="/real")
    proc = subprocess.Popen(
        [str(node_executable("so100_controller")), "--ros-args", "-r", "__node:=real_controller",
         "-r", "__ns:=/real", "-p", "hardware:=real", "-p", f"port:={port}", "-p", "robot_id:=arm",
         "-p", f"calibration_dir:={tmp_path}", "-p", "retry_period:=0.3", "-p", "diagnostics_period:=0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:

        def attempts() -> int:
            connection = probe.diag("real_controller: arm").get("connection", "")
            return int(connection.split("attempt ")[1].split(")")[0]) if "attempt " in connection else 0

        probe.until(lambda: attempts() >= 3, 30, "three connection attempts")  # retried every 0.3 s
        diag = probe.diag("real_controller: arm")
        assert proc.poll() is None, "the node exited"
        assert diag["level"] == 2 and "cannot open the SO100 bus" in diag["connection"]
        assert probe.states == [] and probe.commands == []  # no state, so never a command
    finally:
        probe.close()
        output = _stop(proc)
    assert f"cannot open the SO100 bus on {port}" in output and "retrying every 0.3 s" in output
    assert "Traceback" not in output


class SlowArm(Backend):
    """An arm whose reads fail for its first ``silent`` seconds; records every write."""

    name = "slow"

    def __init__(self, silent: float = 0.5) -> None:
        self.start, self.silent = time.monotonic(), silent
        self.first_read: float | None = None
        self.writes: list[tuple[float, np.ndarray]] = []

    connected = property(lambda self: True)

    def connect(self) -> None:
        pass

    def read(self) -> JointReading:
        if time.monotonic() - self.start < self.silent:
            raise BackendError("no answer yet")
        self.first_read = self.first_read or time.monotonic()
        return JointReading(np.array(HOME))

    def write(self, positions) -> None:
        self.writes.append((time.monotonic(), np.array(positions)))

    def close(self) -> None:
        pass


def _in_process_node(context, arm: Backend, name: str) -> So100ControllerNode:
    return So100ControllerNode(
        backend=arm,
        context=context,
        cli_args=["--ros-args", "-r", f"__node:={name}", "-r", f"__ns:=/{name}"],
        parameter_overrides=[rclpy.parameter.Parameter("max_read_failures", value=1000)],
    )


def test_no_command_before_the_first_joint_state(context):
    """In-process node with an arm whose first reads fail: nothing is written until a state was measured."""
    arm = SlowArm()
    node = _in_process_node(context, arm, "inproc_controller")
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        assert spin_until(executor, lambda: len(arm.writes) > 10, 10)
    finally:
        executor.shutdown()
        node.close()
        node.destroy_node()
    assert arm.first_read is not None and arm.writes[0][0] >= arm.first_read
    np.testing.assert_allclose(arm.writes[0][1], HOME)  # the first command is the measured state


def test_every_parameter_is_documented_and_configured_ones_exist(context):
    node = _in_process_node(context, SlowArm(), "doc_controller")
    try:
        declared = set(node.get_parameters_by_prefix("")) - {"use_sim_time", "start_type_description_service"}
    finally:
        node.close()
        node.destroy_node()
    doc = so100_controller_module.__doc__
    assert [p for p in sorted(declared) if f"  {p} (" not in doc] == []
    config = yaml.safe_load((ROOT / "config" / "so100_controller.yaml").read_text())
    assert set(config["so100_controller"]["ros__parameters"]) <= declared
