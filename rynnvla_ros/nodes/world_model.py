"""``world_model`` node: RynnVLA-002 as an action world model - predicts the camera frames that follow an action.

With ``trigger`` chunk, every new ActionChunk is a request at its observation time t = header.stamp; with trigger
rate, a timer makes a request at ``rate`` Hz at the time t of the newest front frame, using the newest chunk. For a
request the node takes the front (and wrist) frames and the joint state nearest t (each within ``max_age`` of t),
the chunk row due at t + (H - 1) control steps (H: the checkpoint's ``world_model_horizon``, 1 for the release's
models: the row due at t, row 0 for a fresh chunk), converts that absolute joint target back to the model's action
vector with the robot I/O mapping (relative dimensions minus the joint state at t), and predicts the frames H steps
after t.
Prediction runs on its own thread on the newest request only (requests arriving meanwhile replace each other and
are counted as dropped). dry_run chunks are used too: the predictions are for display.

When this node and ``policy`` run in one process (``rynnvla-bringup``) with the same checkpoint, device and dtype
they share one loaded model (rynnvla_ros/inference/model_cache.py); a world-model prediction (autoregressive,
hundreds of image tokens, much of it Python holding the GIL) then slows the policy's thread. On a CPU keep its rate
low (config/world_model.yaml: trigger rate, 0.5 Hz, 1 CPU thread), or run it in its own process (ros2 launch).

Topics (relative names; launch profiles remap them to rynnvla_ros.topics):
  front/image_raw            sensor_msgs/Image   in (any size: squashed to the model's)
  wrist/image_raw            sensor_msgs/Image   in, when the model uses the wrist camera
  joint_states               sensor_msgs/JointState  in (rad, by name)
  action_chunk               rynnvla_ros/ActionChunk  in: joint_positions or joint_deltas (eef_delta_gripper
                                                 with a robot I/O of that action space: LIBERO)
  predicted/front/image_raw  sensor_msgs/Image   out: rgb8 at the model's image size, header.stamp = the time
                                                 predicted, stamp + (start_step + row + H) * dt; frame_id of the
                                                 source camera
  predicted/wrist/image_raw  sensor_msgs/Image   out, when the model uses the wrist camera
  /diagnostics               diagnostic_msgs/DiagnosticArray  out: predictions, rate, prediction time, drops,
                                                 rejections by reason

Parameters (the model and robot I/O ones are listed in rynnvla_ros/nodes/model_common.py):
  trigger (str, "chunk")          chunk (each new ActionChunk) or rate
  rate (float, 2.0)               Hz of predictions with trigger rate
  max_age (float, 0.5)            s between t and the frames / joint state used
  buffer_time (float, 2.0)        s of frames and joint states kept to serve chunks of older observations; make it
                                  longer than the policy's latency + max_age (memory: about 30 Hz x buffer_time
                                  images per camera, 0.9 MB each at 640x480)
  image_qos (str, "reliable")     reliability of the image subscriptions: reliable or best_effort
  diagnostics_period (float, 1.0) s between /diagnostics messages
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from rynnvla_ros.control.rate import RateMeter
from rynnvla_ros.diagnostics import diagnostic_status
from rynnvla_ros.image_conversion import ImageConversionError, array_to_image
from rynnvla_ros.inference.chunks import Chunk, ChunkError
from rynnvla_ros.inference.history import NS, StampedBuffer
from rynnvla_ros.inference.model_cache import load_policy
from rynnvla_ros.inference.observation import Rejected, Rejections
from rynnvla_ros.inference.robot_io import RobotIOError
from rynnvla_ros.inference.stats import RollingStats
from rynnvla_ros.inference.worker import LatestOnlyWorker
from rynnvla_ros.msg import ActionChunk
from rynnvla_ros.nodes.model_common import (
    SENSOR_QOS,
    chunk_from_msg,
    declare_cpu_threads,
    declare_image_qos,
    declare_model_spec,
    declare_robot_io,
    model_image,
    stamp_ns,
    to_stamp,
)

TRIGGERS = ("chunk", "rate")


@dataclass(frozen=True)
class Request:
    """Predict the frames after the row of ``chunk`` due at time ``t`` (ns)."""

    chunk: Chunk
    t: int


class WorldModelNode(Node):
    """Thin ROS shell: frame/joint buffers, a latest-only prediction thread and the predicted-image publishers."""

    def __init__(self, **kwargs) -> None:
        super().__init__("world_model", **kwargs)
        spec = declare_model_spec(self)
        declare_cpu_threads(self)
        spec.check()
        self.trigger = self.declare_parameter("trigger", "chunk").value
        rate = float(self.declare_parameter("rate", 2.0).value)
        self.max_age_ns = int(float(self.declare_parameter("max_age", 0.5).value) * NS)
        diag_period = float(self.declare_parameter("diagnostics_period", 1.0).value)
        buffer_time = float(self.declare_parameter("buffer_time", 2.0).value)
        image_qos = declare_image_qos(self)
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}, got {self.trigger!r}")
        if rate <= 0 or self.max_age_ns <= 0 or diag_period <= 0 or buffer_time <= 0:
            raise ValueError("rate, max_age, diagnostics_period and buffer_time must be > 0")

        self.io, io_source = declare_robot_io(self, spec)
        self.model = load_policy(spec)
        if self.model.action_dim != self.io.action_dim:
            raise RobotIOError(
                f"the model's actions have {self.model.action_dim} dims, the robot I/O {self.io.action_dim}"
            )
        self.image_size = tuple(self.model.image_size)
        self._lock = threading.Lock()
        span = int(buffer_time * NS)
        self.frames = {c: StampedBuffer[Image](span, 256) for c in self.io.cameras}
        self.joints = StampedBuffer[np.ndarray](span, 2048)
        self.latest_chunk: Chunk | None = None
        self.rejections = Rejections()
        self.prediction_time = RollingStats()
        self.prediction_rate = RateMeter(window=10.0)
        self.predictions = 0
        self._errors_seen = 0

        self.image_pubs = {c: self.create_publisher(Image, f"predicted/{c}/image_raw", 5) for c in self.io.cameras}
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        inputs = MutuallyExclusiveCallbackGroup()
        for camera in self.io.cameras:
            self.create_subscription(
                Image, f"{camera}/image_raw", lambda m, c=camera: self._on_image(c, m), image_qos, callback_group=inputs
            )
        self.create_subscription(JointState, "joint_states", self._on_joints, SENSOR_QOS, callback_group=inputs)
        self.create_subscription(ActionChunk, "action_chunk", self._on_chunk, 10, callback_group=inputs)
        self.worker = LatestOnlyWorker(self._predict, self._on_error, name="world-model")
        if self.trigger == "rate":
            self.create_timer(1.0 / rate, self._tick, MutuallyExclusiveCallbackGroup())
        self.create_timer(diag_period, self._publish_diagnostics, MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"model {spec.model_dir} (images {self.image_size[1]}x{self.image_size[0]}), robot I/O from {io_source}; "
            f"trigger {self.trigger}" + (f" at {rate:g} Hz" if self.trigger == "rate" else "")
        )

    # ------------------------------------------------------------------------------------------ inputs
    def _reject(self, key: str, message: str, error: bool = False) -> None:
        if self.rejections.add(key, message):
            line = f"{message} [{key}: {self.rejections.counts[key]} so far]"
            # two call sites: rclpy refuses one call site logging at two severities
            if error:
                self.get_logger().error(line)
            else:
                self.get_logger().warning(line)

    def _on_image(self, camera: str, msg: Image) -> None:
        with self._lock:
            self.frames[camera].add(stamp_ns(msg.header.stamp), msg)

    def _on_joints(self, msg: JointState) -> None:
        try:
            q = self.io.joint_vector(msg.name, msg.position)
        except RobotIOError as exc:
            self._reject(exc.kind, f"joint_states rejected: {exc}")
            return
        with self._lock:
            self.joints.add(stamp_ns(msg.header.stamp), q)

    def _on_chunk(self, msg: ActionChunk) -> None:
        try:
            chunk = chunk_from_msg(msg)
        except ChunkError as exc:
            self._reject("bad_chunk", f"action chunk rejected: {exc}")
            return
        with self._lock:
            self.latest_chunk = chunk
        if self.trigger == "chunk":
            self.worker.submit(Request(chunk, chunk.stamp))

    def _tick(self) -> None:
        with self._lock:
            chunk = self.latest_chunk
            front = self.frames["front"].latest()
        if chunk is None or front is None:
            self._reject("waiting", "waiting for an action chunk and a front image")
            return
        self.worker.submit(Request(chunk, front.stamp))

    # ------------------------------------------------------------------------------------------ prediction
    def _nearest(self, buffer: StampedBuffer, t: int, what: str) -> Any:
        with self._lock:
            item = buffer.nearest(t)
        if item is None or abs(item.stamp - t) > self.max_age_ns:
            raise Rejected(f"stale_{what}", f"no {what} within max_age {self.max_age_ns / NS:g} s of t")
        return item.value

    def _predict(self, req: Request) -> None:
        try:
            row = req.chunk.step_at(req.t)
        except ChunkError as exc:
            raise Rejected("stale_chunk", str(exc)) from None
        needs_state = req.chunk.space == "joint_deltas" or bool(self.io.relative_mask.any())
        q = self._nearest(self.joints, req.t, "joint_state") if needs_state else None
        msgs = {c: self._nearest(self.frames[c], req.t, f"{c}_image") for c in self.io.cameras}
        try:
            images = {c: model_image(m, self.image_size)[0] for c, m in msgs.items()}
            ahead = row + self.model.world_model_horizon - 1  # the action due just before the predicted frames
            action = req.chunk.model_action(min(ahead, req.chunk.horizon - 1), self.io, q)
        except (ChunkError, ImageConversionError) as exc:
            raise Rejected("bad_input", str(exc)) from None
        result = self.model.predict_next_frames(images["front"], images.get("wrist"), action)
        stamp = to_stamp(req.chunk.next_frame_time(ahead))
        for camera, rgb in zip(self.io.cameras, result.images, strict=True):
            out = array_to_image(np.ascontiguousarray(rgb), "rgb8")
            out.header.stamp = stamp
            out.header.frame_id = msgs[camera].header.frame_id
            self.image_pubs[camera].publish(out)
        self.predictions += 1
        self.prediction_time.add(result.timings["total_ms"] / 1e3)
        self.prediction_rate.tick(time.monotonic())

    def _on_error(self, req: Request, exc: Exception) -> None:
        if isinstance(exc, Rejected):
            self._reject(exc.key, str(exc))
        else:
            self._reject("prediction_error", f"prediction failed: {type(exc).__name__}: {exc}", error=True)

    # ------------------------------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        errors = self.rejections.counts.get("prediction_error", 0)
        rate = self.prediction_rate.rate(time.monotonic())
        if errors > self._errors_seen:
            level, message = DiagnosticStatus.ERROR, self.rejections.last_message["prediction_error"]
        elif self.predictions:
            level, message = DiagnosticStatus.OK, f"{self.predictions} predictions ({rate:.2f} Hz)"
        else:
            latest = self.rejections.latest
            level, message = DiagnosticStatus.WARN, "no predictions yet" + (f"; {latest}" if latest else "")
        self._errors_seen = errors
        values: dict = {
            "predictions": self.predictions,
            "prediction_rate_hz": rate,
            "requests_dropped": self.worker.dropped,
            "rejections": self.rejections.total,
        }
        values.update({f"prediction_s_{k}": v for k, v in self.prediction_time.summary().items()})
        values.update({f"rejected_{k}": v for k, v in sorted(self.rejections.counts.items())})
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [diagnostic_status(f"rynnvla_ros: {self.get_name()}", "world_model", level, message, values)]
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Stop the prediction thread."""
        self.worker.close()
