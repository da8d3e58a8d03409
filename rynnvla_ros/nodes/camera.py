"""``camera`` node: publishes frames from a V4L2 device, a video file or an image folder.

Topics (relative; launch profiles remap them):
  image_raw   sensor_msgs/Image       at ``rate`` Hz, stamped at capture
  camera_info sensor_msgs/CameraInfo  with every image

Parameters:
  source (str, "0")            device index, /dev/videoN, video file or folder of images
  rate (float, 30.0)           publishing rate in Hz
  frame_id (str, "camera_optical_frame")
  width, height (int, 0)       output size; 0 keeps the native size (devices are asked for it, files are resized)
  encoding (str, "rgb8")       rgb8, bgr8 or mono8
  loop (bool, true)            at the end of a file or folder start again, or stop publishing
  retry_period (float, 1.0)    seconds between attempts to (re)open a missing or lost device
  camera_info_file (str, "")   calibration YAML (camera_calibration format); empty: size only, no intrinsics
"""

from __future__ import annotations

import time

import yaml
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image

from rynnvla_ros.camera_source import FrameSource, SourceSpec
from rynnvla_ros.image_conversion import ENCODINGS, array_to_image, from_rgb


def load_camera_info(path: str) -> CameraInfo:
    """Read a ROS camera calibration YAML (image_width, camera_matrix, distortion_coefficients, ...)."""
    with open(path) as f:
        calib = yaml.safe_load(f)
    try:
        info = CameraInfo()
        info.width, info.height = int(calib["image_width"]), int(calib["image_height"])
        info.distortion_model = str(calib.get("distortion_model", "plumb_bob"))
        info.k = [float(v) for v in calib["camera_matrix"]["data"]]
        info.d = [float(v) for v in calib.get("distortion_coefficients", {}).get("data", [])]
        info.r = [float(v) for v in calib.get("rectification_matrix", {}).get("data", [1, 0, 0, 0, 1, 0, 0, 0, 1])]
        p = calib.get("projection_matrix", {}).get("data")
        info.p = [float(v) for v in p] if p else [*info.k[:3], 0.0, *info.k[3:6], 0.0, *info.k[6:9], 0.0]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"camera_info_file {path} is not a camera calibration YAML: {exc}") from exc
    return info


class CameraNode(Node):
    """Publishes ``image_raw`` and ``camera_info`` from a :class:`FrameSource`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("camera", **kwargs)
        source = self.declare_parameter("source", "0").value
        rate = float(self.declare_parameter("rate", 30.0).value)
        self.frame_id = self.declare_parameter("frame_id", "camera_optical_frame").value
        width = int(self.declare_parameter("width", 0).value)
        height = int(self.declare_parameter("height", 0).value)
        self.encoding = self.declare_parameter("encoding", "rgb8").value
        loop = bool(self.declare_parameter("loop", True).value)
        self.retry_period = float(self.declare_parameter("retry_period", 1.0).value)
        info_file = self.declare_parameter("camera_info_file", "").value
        if rate <= 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate}")
        if self.encoding not in ENCODINGS or self.encoding == "16UC1":
            raise ValueError(f"encoding must be rgb8, bgr8 or mono8, got {self.encoding!r}")
        if (width > 0) != (height > 0):
            raise ValueError(f"set both width and height, or neither (got {width}x{height})")

        self.info_template = load_camera_info(info_file) if info_file else None
        self.source = FrameSource(SourceSpec(str(source), width, height, loop))
        qos = QoSProfile(depth=5)
        self.image_pub = self.create_publisher(Image, "image_raw", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self.published = 0
        self._last_status = ""
        self._next_open = 0.0
        self.timer = self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"camera {source!r} at {rate:g} Hz as {self.encoding}, frame {self.frame_id!r}")

    def _tick(self) -> None:
        if not self.source.is_open and not self.source.finished:
            if time.monotonic() < self._next_open:
                return
            self._next_open = time.monotonic() + self.retry_period
        rgb = self.source.read()
        self._report_status()
        if rgb is None:
            if self.source.finished:
                self.timer.cancel()
            return
        stamp = self.get_clock().now().to_msg()
        img = array_to_image(from_rgb(rgb, self.encoding), self.encoding)
        img.header.stamp = stamp
        img.header.frame_id = self.frame_id
        info = CameraInfo() if self.info_template is None else _copy_info(self.info_template)
        info.header = img.header
        info.width, info.height = img.width, img.height
        self.image_pub.publish(img)
        self.info_pub.publish(info)
        self.published += 1

    def _report_status(self) -> None:
        status = self.source.status
        if status == self._last_status:
            return
        self._last_status = status
        log = self.get_logger()
        failing = not self.source.is_open and not self.source.finished
        if failing:  # rclpy: one severity per call site
            log.warning(f"{status}; retrying every {self.retry_period:g} s")
        else:
            log.info(status)

    def close(self) -> None:
        """Release the capture device."""
        self.source.close()


def _copy_info(info: CameraInfo) -> CameraInfo:
    out = CameraInfo()
    out.distortion_model = info.distortion_model
    out.d, out.k, out.r, out.p = list(info.d), list(info.k), list(info.r), list(info.p)
    return out
