"""The ``camera`` executable publishes a video file's frames at the requested rate."""

import contextlib
import itertools
import sys

import cv2
import numpy as np
import pytest
import rclpy
from conftest import node_executable, spin_until
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image

from rynnvla_ros.image_conversion import image_to_rgb

N_FRAMES, RATE = 12, 20.0


@pytest.fixture
def video(tmp_path):
    """A small MJPG video whose frames are all different; returns its path and the frames as OpenCV decodes them."""
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(N_FRAMES):
        f = np.full((48, 64, 3), 10 * i, np.uint8)
        f[2 * i : 2 * i + 4, :, 1] = 250
        writer.write(f)
    writer.release()
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    assert len(frames) == N_FRAMES
    return path, frames


def test_camera_executable_publishes_file_frames_at_rate(ros_context, start_process, video):
    path, frames = video
    node = rclpy.create_node("camera_probe", context=ros_context)
    images, infos = [], []
    node.create_subscription(Image, "/probe/image", images.append, 100)
    node.create_subscription(CameraInfo, "/probe/camera_info", infos.append, 100)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    proc = start_process(
        node_executable("camera"),
        "--ros-args",
        "-p", f"source:={path}",
        "-p", f"rate:={RATE}",
        "-p", "frame_id:=probe_frame",
        "-r", "image_raw:=/probe/image",
        "-r", "camera_info:=/probe/camera_info",
    )  # fmt: skip
    try:
        assert spin_until(executor, lambda: len(images) >= 2 * N_FRAMES + 1, timeout=30), (
            f"received {len(images)} images; camera output:\n{_output(proc)}"
        )
    finally:
        executor.shutdown()
        node.destroy_node()

    rgb = [image_to_rgb(m) for m in images]
    index = [next(i for i, f in enumerate(frames) if np.array_equal(f, r)) for r in rgb]  # every image is a frame
    # consecutive images are consecutive frames (the file loops), so every frame arrived, in order
    assert all((b - a) % N_FRAMES == 1 for a, b in itertools.pairwise(index)), index
    assert images[0].header.frame_id == "probe_frame" and images[0].encoding == "rgb8"
    stamps = np.array([m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for m in images])
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert abs(rate - RATE) / RATE < 0.1, f"published at {rate:.2f} Hz, asked for {RATE}"
    assert infos and (infos[0].width, infos[0].height) == (64, 48)


def test_camera_keeps_running_without_its_device(ros_context, start_process, tmp_path):
    missing = str(tmp_path / "unplugged.mp4")
    proc = start_process(node_executable("camera"), "--ros-args", "-p", f"source:={missing}", "-p", "retry_period:=0.2")
    with contextlib.suppress(Exception):
        proc.wait(timeout=3)
    assert proc.poll() is None, f"camera exited without its device:\n{_output(proc)}"
    proc.terminate()
    out = proc.communicate(timeout=10)[0]
    assert "unplugged.mp4 does not exist; retrying" in out


def test_bad_parameter_fails_with_a_clear_message(start_process):
    proc = start_process(node_executable("camera"), "--ros-args", "-p", "encoding:=yuv422")
    out = proc.communicate(timeout=20)[0]
    assert proc.returncode == 1 and "encoding must be rgb8, bgr8 or mono8" in out


def _output(proc) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.communicate(timeout=5)[0]
    except Exception:
        return "(no output)"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
