"""Faults of the running so100 graph that the node tests do not cover: the policy process dies mid-run, and the log
lines that name why bad chunks were rejected.

The other faults of the list are tested where they belong: malformed, NaN, oversized and wrong-dimension chunks, a
chunk beyond a joint limit, the e-stop and the absent Feetech bus in test_so100_controller.py; stale images in
test_policy_node.py. Here the controller and the policy run as separate processes, started from the so100 profile
as ``rynnvla-bringup`` starts a node in its own process (executable, parameter file, argument parameters,
remappings).
"""

from __future__ import annotations

import signal
import subprocess

import numpy as np
import pytest
import rclpy
import yaml
from conftest import spin_until
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from rynnvla_ros.msg import ActionChunk
from sensor_msgs.msg import JointState

from rynnvla_ros import topics
from rynnvla_ros.bringup import child_command, node_options, share_dir
from rynnvla_ros.control.so100_description import JOINT_NAMES
from rynnvla_ros.profiles import get_profile

pytestmark = [pytest.mark.slow, pytest.mark.sim, pytest.mark.ros]

NS = 1_000_000_000
CONTROLLER = yaml.safe_load((share_dir() / "config" / "so100_controller.yaml").read_text())["so100_controller"]
TIMEOUT = CONTROLLER["ros__parameters"]["command_timeout"]
MAX_STEP = CONTROLLER["ros__parameters"]["max_step"]


def launch_command(node: str, values: dict[str, str], extra: dict[str, str] | None = None) -> list[str]:
    """The command line ``rynnvla-bringup`` runs for node ``node`` of the so100 profile (plus ``extra`` parameters,
    given as ``-p name:=value`` text)."""
    profile = get_profile("so100")
    spec = next(n for n in profile.nodes if n.name == node)
    cmd = child_command(spec, node_options(profile, spec, values, share_dir() / "config"))
    return cmd + [a for name, value in (extra or {}).items() for a in ("-p", f"{name}:={value}")]


def _ns(stamp) -> int:
    return stamp.sec * NS + stamp.nanosec


def test_policy_killed_mid_run_controller_holds_within_its_timeout_without_a_jump(ros_context):
    values = get_profile("so100").resolve({})  # sim, the default model, executed chunks
    procs = {
        "so100_controller": subprocess.Popen(
            launch_command("so100_controller", values, {"diagnostics_period": "0.2", "camera_rate": "15.0"}),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ),
        "policy": subprocess.Popen(
            launch_command("policy", values), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ),
    }  # fmt: skip
    node = rclpy.create_node("fault_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    states, commands, chunks, diags = [], [], [], []
    now = lambda: node.get_clock().now().nanoseconds  # noqa: E731
    node.create_subscription(JointState, topics.JOINT_STATES, states.append, QoSProfile(depth=2000))
    node.create_subscription(JointState, topics.JOINT_COMMAND, commands.append, QoSProfile(depth=2000))
    node.create_subscription(ActionChunk, topics.ACTION_CHUNK, lambda m: chunks.append((now(), m)), 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 500)

    def controller() -> dict[str, str]:
        for msg in reversed(diags):
            for s in msg.status:
                if s.name == "so100_controller: arm":
                    return {"message": s.message} | {kv.key: kv.value for kv in s.values}
        return {}

    def settled() -> bool:
        """Whether the last measured joint state is at the last command (within 0.05 rad)."""
        if not states or not commands:
            return False
        return bool(np.abs(np.array(states[-1].position) - np.array(commands[-1].position)).max() < 0.05)

    def executing() -> bool:
        """5 chunks accepted, 3 s of them, and one being executed now (a loaded machine can starve the policy for a
        moment, and the controller then holds)."""
        diag = controller()
        return (
            int(diag.get("accepted_chunks", 0)) >= 5
            and (now() - chunks[0][0]) > 3 * NS
            and diag.get("state") == "executing"
        )

    outputs = {}
    try:
        running = spin_until(executor, lambda: any(p.poll() is not None for p in procs.values()) or executing(), 180)
        dead = [n for n, p in procs.items() if p.poll() is not None]
        assert running and not dead, (
            f"did not start: {[(n, procs[n].communicate()[0][-2000:]) for n in dead]}, {controller()}"
        )
        killed = now()
        procs["policy"].send_signal(signal.SIGKILL)
        procs["policy"].wait(timeout=10)
        spin_until(executor, lambda: False, TIMEOUT + 2.5)
        # the timing of the hold is checked on the command stamps below; the reports (diagnostics, joint states)
        # can lag them on a stalled machine, so wait for them, bounded, instead of reading them at a fixed time
        spin_until(executor, lambda: controller().get("state") == "holding position" and settled(), 15)
        end = now()
        diag = controller()
        assert procs["so100_controller"].poll() is None, "the controller died with the policy"
    finally:
        executor.shutdown()
        node.destroy_node()
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.terminate()
            outputs[name] = proc.communicate(timeout=30)[0]
    assert procs["policy"].returncode == -signal.SIGKILL
    assert "Traceback" not in outputs["so100_controller"]

    last_chunk = max(t for t, _ in chunks)  # received by the probe; the controller got it at the same time
    cmd_t = np.array([_ns(c.header.stamp) for c in commands])
    cmd_q = np.array([c.position for c in commands])
    after = cmd_t >= killed - NS
    # no jump: every tick moves each joint by at most max_step, through the kill and the timeout
    assert np.abs(np.diff(cmd_q[after], axis=0)).max() <= MAX_STEP + 1e-9
    # held: the command stops changing within command_timeout of the last chunk (0.5 s slack for a loaded CPU)
    changed = np.flatnonzero(np.abs(np.diff(cmd_q, axis=0)).max(axis=1) > 1e-12)
    last_change = cmd_t[changed[-1] + 1] if len(changed) else cmd_t[0]
    assert last_change <= last_chunk + (TIMEOUT + 0.5) * NS, (
        f"still moving {(last_change - last_chunk) / NS:.2f} s after the last chunk (timeout {TIMEOUT} s)"
    )
    # holding: by the timeout, or because a chunk that arrived late already ran out (both end in a hold)
    assert diag["state"] == "holding position", diag
    # the controller kept running: joint states until the end, the arm at the held command
    st = np.array([_ns(s.header.stamp) for s in states])
    late = st >= end - NS
    assert late.sum() >= 30, f"{late.sum()} joint states in the last second"
    assert np.abs(np.array(states[-1].position) - cmd_q[-1]).max() < 0.05
    print(
        f"policy killed {(killed - last_chunk) / NS:.2f} s after its last chunk; command held "
        f"{(last_change - last_chunk) / NS:.2f} s after it (timeout {TIMEOUT} s); "
        f"largest step {np.abs(np.diff(cmd_q[after], axis=0)).max():.4f} rad"
    )


def _chunk(seq: int, rows, stamp_ns: int, dim: int | None = None) -> ActionChunk:
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    msg = ActionChunk(names=list(JOINT_NAMES), action_space="joint_positions", dt=0.2, start_step=1, seq=seq)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS)
    msg.horizon, msg.dim = rows.shape[0], rows.shape[1] if dim is None else dim
    msg.data = rows.ravel().tolist()
    return msg


def test_bad_chunks_are_rejected_with_a_logged_reason_while_the_controller_keeps_running(ros_context):
    """The controller's log names the reason of each rejection (its node test checks the diagnostics)."""
    values = get_profile("so100").resolve({"policy": "false", "world_model": "false"})
    extra = {"camera_rate": "5.0", "image_width": "32", "image_height": "32"}
    proc = subprocess.Popen(
        launch_command("so100_controller", values, extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    node = rclpy.create_node("bad_chunk_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    states: list[JointState] = []
    node.create_subscription(JointState, topics.JOINT_STATES, states.append, QoSProfile(depth=500))
    pub = node.create_publisher(ActionChunk, topics.ACTION_CHUNK, 10)
    try:
        assert spin_until(executor, lambda: len(states) > 20 or proc.poll() is not None, 120), "no joint states"
        q = np.array(states[-1].position)
        now = node.get_clock().now().nanoseconds
        pub.publish(_chunk(1, np.full((3, 6), np.nan), now))
        pub.publish(_chunk(2, np.tile(q, (2000, 1)), now))  # oversized
        pub.publish(_chunk(3, np.tile(q, (3, 1)), now, dim=5))  # wrong dimension
        n = len(states)
        spin_until(executor, lambda: False, 1.5)
        assert len(states) - n > 50 and proc.poll() is None  # still running, still publishing
        target = q + np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.0])
        pub.publish(_chunk(4, np.tile(target, (10, 1)), node.get_clock().now().nanoseconds))
        assert spin_until(executor, lambda: abs(states[-1].position[0] - target[0]) < 0.03, 10), "valid chunk ignored"
    finally:
        executor.shutdown()
        node.destroy_node()
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "chunk 1 rejected: 18 non-finite value(s) (NaN/inf), first at step 0, column 0" in out, out
    assert "chunk 2 rejected: oversized chunk: 2000 steps > max_chunk_steps 1000" in out
    assert "chunk 3 rejected: dim is 5 but 6 names are given" in out
    assert "chunk 4 rejected" not in out and "Traceback" not in out
