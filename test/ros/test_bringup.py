"""``rynnvla-bringup`` runs a profile's nodes in one process with the profile's parameters and remappings."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy
from conftest import spin_until
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image, JointState

from rynnvla_ros import topics
from rynnvla_ros.bringup import main as bringup_main
from rynnvla_ros.profiles import PROFILES, Arg, NodeSpec, Profile, When


def test_so100_real_cameras_publish_on_the_profile_topics(ros_context, start_process, tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((30, 40, 3), 40 * i, np.uint8))
    bringup = Path(sys.executable).parent / "rynnvla-bringup"
    proc = start_process(
        bringup, "so100", "hardware:=real", f"front_device:={tmp_path}", f"wrist_device:={tmp_path}",
        f"port:={tmp_path / 'no_arm'}",  # the controller runs too; it must not find a real arm
    )  # fmt: skip
    node = rclpy.create_node("bringup_probe", context=ros_context)
    got: dict[str, list[Image]] = {topics.FRONT_IMAGE: [], topics.WRIST_IMAGE: []}
    for topic, sink in got.items():
        node.create_subscription(Image, topic, sink.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        ok = spin_until(executor, lambda: all(len(v) >= 3 for v in got.values()), timeout=30)
    finally:
        executor.shutdown()
        node.destroy_node()
    if not ok:
        proc.terminate()
        pytest.fail(f"no images on {list(got)}: {proc.communicate(timeout=10)[0]}")
    front = got[topics.FRONT_IMAGE][0]
    # config/cameras.yaml sets 640x480 and the frame id; the launch argument set the source
    assert (front.width, front.height, front.header.frame_id) == (640, 480, "front_camera_optical_frame")
    assert got[topics.WRIST_IMAGE][0].header.frame_id == "wrist_camera_optical_frame"


def test_so100_sim_publishes_arm_and_cameras_on_the_profile_topics(ros_context, start_process):
    bringup = Path(sys.executable).parent / "rynnvla-bringup"
    proc = start_process(bringup, "so100")  # hardware:=sim by default
    node = rclpy.create_node("bringup_sim_probe", context=ros_context)
    got: dict[str, list] = {topics.JOINT_STATES: [], topics.JOINT_COMMAND: [], topics.FRONT_IMAGE: [],
                            topics.WRIST_IMAGE: []}  # fmt: skip
    for topic, sink in got.items():
        node.create_subscription(Image if "image" in topic else JointState, topic, sink.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        ok = spin_until(executor, lambda: all(len(v) >= 3 for v in got.values()), timeout=60)
    finally:
        executor.shutdown()
        node.destroy_node()
    if not ok:
        proc.terminate()
        pytest.fail(f"missing topics {[t for t, v in got.items() if len(v) < 3]}: {proc.communicate(timeout=10)[0]}")
    # config/so100_controller.yaml sets the image size
    assert (got[topics.FRONT_IMAGE][0].width, got[topics.FRONT_IMAGE][0].height) == (256, 256)


def test_bringup_with_no_active_node_says_so(monkeypatch, capsys):
    # every shipped profile runs its controller; a profile whose only node is switched off by an argument
    spec = NodeSpec(name="front_camera", executable="camera", when=When("hardware", ("real",)))
    profile = Profile("cameras_only", "test", (Arg("hardware", "sim", "", choices=("sim", "real")),), (spec,))
    monkeypatch.setitem(PROFILES, profile.name, profile)
    assert bringup_main([profile.name, "hardware:=sim"]) == 1
    assert "no node of cameras_only is active" in capsys.readouterr().err


def test_the_controller_process_does_not_outlive_a_killed_bringup(start_process):
    """The controller runs as bringup's child; SIGKILLing bringup must not leave it driving the arm."""
    import os
    import signal
    import time

    bringup = Path(sys.executable).parent / "rynnvla-bringup"
    proc = start_process(bringup, "so100", "policy:=false", "world_model:=false")
    pid = None
    deadline = time.monotonic() + 60
    while pid is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "so100_controller runs in its own process (pid " in line:
            pid = int(line.split("(pid ")[1].split(")")[0])
    assert pid is not None, "bringup did not report the controller's process"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the controller outlived the killed bringup")
