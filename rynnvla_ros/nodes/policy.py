"""``policy`` node: RynnVLA-002 as a VLA policy - camera frames, joint state and a task in, action chunks out.

Every front camera frame makes an observation (stamp t = the frame's stamp) from the frame history, the wrist frame
and the joint state nearest t (a front frame whose wrist frame or joint state has not arrived yet waits for them,
up to ``max_age``). Observations that are unusable are refused, counted and logged with the reason (front image
older than ``max_age``, no wrist image or joint state within ``max_age`` of t, no task, a joint state with a missing
joint or NaN, an image that cannot be decoded). Inference runs on its own thread on the newest
observation only: observations arriving while the model is busy replace each other (counted as dropped), nothing
queues. With ``trigger`` request (lock-step simulation, e.g. libero_bridge) front frames alone make no
observation: each ChunkRequest names the stamp of the observation to answer (its frames and state are published
with exactly that stamp), and the node answers it once, taking the request's stamp as "now" (nothing is stale in
a simulator that waits) and the request's task when it has one. Images of another size than the model's are
squashed to it explicitly (image_tokenizer.resize, as the converters wrote the training frames; logged once per
camera). The model's chunk is turned into absolute joint positions in radians (relative dimensions are added to the
observed state) by the robot I/O mapping (rynnvla_ros/inference/robot_io.py); a mapping with action_space
eef_delta_gripper (LIBERO) publishes the model's actions unchanged, named by its action_names.

Topics (relative names; launch profiles remap them to rynnvla_ros.topics):
  front/image_raw    sensor_msgs/Image        in (rgb8, bgr8 or mono8; depth 2, reliability from image_qos)
  wrist/image_raw    sensor_msgs/Image        in, when the model uses the wrist camera
  joint_states       sensor_msgs/JointState   in (best effort): positions in rad, by name, any order, extra
                                              joints ignored
  task               std_msgs/String          in, transient-local: the instruction (replaces the task parameter)
  chunk_request      rynnvla_ros/ChunkRequest in, with trigger request: the observation stamps to answer
  action_chunk       rynnvla_ros/ActionChunk  out: header.stamp = observation time t, names = joint names,
                                              action_space joint_positions (rad) (or the robot I/O's action names
                                              and eef_delta_gripper), dt = control period, start_step 0, horizon K,
                                              seq, inference_time (s, the model's own time), dry_run
  joint_trajectory   trajectory_msgs/JointTrajectory  out, for joint actions when publish_trajectory is true
                                              and dry_run false (a trajectory controller would execute it): the
                                              same chunk, header.stamp = t, points at time_from_start = i * dt.
                                              Do not feed it to so100_controller as well: it executes action_chunk
  /diagnostics       diagnostic_msgs/DiagnosticArray  out, every diagnostics_period: chunks, rate, latency
                                              (stamp -> publish) and its part outside the model, inference time,
                                              dropped observations, rejections by reason

Parameters (the model and robot I/O ones are listed in rynnvla_ros/nodes/model_common.py):
  task (str, "")                 instruction, e.g. "Place the strawberries from the table into the cup."
  mode (str, "continuous")       continuous (action head) or discrete (action tokens)
  trigger (str, "frame")         frame (every front frame makes an observation) or request (chunk_request)
  dry_run (bool, true)           chunks are flagged dry_run (the controller ignores them), no joint_trajectory
  publish_trajectory (bool, true)  also publish joint_trajectory (config/policy.yaml: false, so100_controller
                                 takes action_chunk)
  replan_period (float, 0.0)     s (trigger frame): a front frame makes an observation only this long after the
                                 last one given to the model (0: every frame). The controller then follows
                                 most of each chunk instead of only its first steps
  max_age (float, 0.2)           s: older images, and wrist images / joint states further from the image, refused
  image_qos (str, "reliable")    reliability of the image subscriptions: reliable or best_effort (for cameras
                                 publishing with sensor-data QoS; large best-effort images are often lost)
  diagnostics_period (float, 1.0)  s between /diagnostics messages
  task and dry_run may also be changed at run time (ros2 param set).
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rynnvla_ros.control.rate import RateMeter
from rynnvla_ros.diagnostics import diagnostic_status
from rynnvla_ros.image_conversion import ImageConversionError
from rynnvla_ros.inference.history import NS
from rynnvla_ros.inference.model_cache import MODES, load_policy
from rynnvla_ros.inference.observation import Observation, ObservationAssembler, Rejected, Rejections
from rynnvla_ros.inference.stats import RollingStats
from rynnvla_ros.inference.worker import LatestOnlyWorker
from rynnvla_ros.msg import ActionChunk, ChunkRequest
from rynnvla_ros.nodes.model_common import (
    SENSOR_QOS,
    declare_cpu_threads,
    declare_image_qos,
    declare_model_spec,
    declare_robot_io,
    model_image,
    stamp_ns,
    to_stamp,
)

TASK_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TRIGGERS = ("frame", "request")


class PolicyNode(Node):
    """Thin ROS shell: observation gating, a latest-only inference thread and the chunk publishers."""

    def __init__(self, **kwargs) -> None:
        super().__init__("policy", **kwargs)
        spec = declare_model_spec(self)
        spec.check()
        declare_cpu_threads(self)
        self.task = str(self.declare_parameter("task", "").value).strip()
        self.mode = self.declare_parameter("mode", "continuous").value
        self.trigger = self.declare_parameter("trigger", "frame").value
        self.dry_run = bool(self.declare_parameter("dry_run", True).value)
        self.publish_trajectory = bool(self.declare_parameter("publish_trajectory", True).value)
        self.replan_period = float(self.declare_parameter("replan_period", 0.0).value)
        max_age = float(self.declare_parameter("max_age", 0.2).value)
        diag_period = float(self.declare_parameter("diagnostics_period", 1.0).value)
        image_qos = declare_image_qos(self)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}, got {self.trigger!r}")
        if max_age <= 0 or diag_period <= 0:
            raise ValueError("max_age and diagnostics_period must be > 0")
        if self.replan_period < 0:
            raise ValueError(f"replan_period must be >= 0 s, got {self.replan_period}")

        self.io, io_source = declare_robot_io(self, spec)
        self.model = load_policy(spec)
        self.io.check_model(self.model.action_dim, self.model.processor.state_dim)
        self.image_size = tuple(self.model.image_size)
        self.assembler = ObservationAssembler(self.io, max_age)
        self.rejections = Rejections()
        self.latency = RollingStats()
        self.overhead = RollingStats()
        self.inference = RollingStats()
        self.chunk_rate = RateMeter(window=5.0)
        self.seq = 0
        self._last_observation = -(2**62)  # stamp (ns) of the last observation given to the model
        self._resized: set[str] = set()
        self._errors_seen = 0
        # trigger request (all touched from the inputs callback group only): the newest request whose front frame
        # has not arrived, the one waiting in the assembler for its wrist frame or state, and the stamps whose
        # observation went to the model (their repeats are ignored)
        self._request: tuple[int, str] | None = None
        self._assembling: tuple[int, str] | None = None
        self._answered: deque[int] = deque(maxlen=32)

        self.chunk_pub = self.create_publisher(ActionChunk, "action_chunk", 10)
        self.traj_pub = self.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        inputs = MutuallyExclusiveCallbackGroup()
        self.create_subscription(Image, "front/image_raw", self._on_front, image_qos, callback_group=inputs)
        if self.io.use_wrist:
            self.create_subscription(Image, "wrist/image_raw", self._on_wrist, image_qos, callback_group=inputs)
        self.create_subscription(JointState, "joint_states", self._on_joints, SENSOR_QOS, callback_group=inputs)
        self.create_subscription(String, "task", self._on_task, TASK_QOS, callback_group=inputs)
        if self.trigger == "request":
            self.create_subscription(ChunkRequest, "chunk_request", self._on_request, 10, callback_group=inputs)
        self.add_on_set_parameters_callback(self._on_parameters)
        self.worker = LatestOnlyWorker(self._infer, self._on_error, name="policy-inference")
        self.create_timer(diag_period, self._publish_diagnostics, MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"model {spec.model_dir} ({self.mode}, K={self.model.time_horizon}, A={self.model.action_dim}, "
            f"images {self.image_size[1]}x{self.image_size[0]}), robot I/O from {io_source}: joints "
            f"{', '.join(self.io.names)}, actions {self.io.action_space}, history {self.io.history}, cameras "
            f"{', '.join(self.io.cameras)}; trigger {self.trigger}; dry_run {self.dry_run}; task {self.task!r}"
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

    def _image(self, msg: Image, camera: str) -> np.ndarray | None:
        try:
            rgb, resized = model_image(msg, self.image_size)
        except (ImageConversionError, ValueError) as exc:
            self._reject("bad_image", f"{camera} image rejected: {exc}")
            return None
        if resized and camera not in self._resized:
            self._resized.add(camera)
            self.get_logger().info(
                f"{camera} images are {msg.width}x{msg.height}; squashing them to the model's "
                f"{self.image_size[1]}x{self.image_size[0]}"
            )
        return rgb

    def _on_front(self, msg: Image) -> None:
        rgb = self._image(msg, "front")
        if rgb is None:
            return
        current = self.assembler.add_frame("front", stamp_ns(msg.header.stamp), rgb)
        if self.trigger == "frame":
            if current.stamp - self._last_observation < self.replan_period * NS:
                return  # the frame stays in the history; the chunk in force is still being followed
            self._handle(*self.assembler.offer(current, self.task, self._now()))
        else:
            self._serve_request()

    def _on_wrist(self, msg: Image) -> None:
        rgb = self._image(msg, "wrist")
        if rgb is not None:
            self.assembler.add_frame("wrist", stamp_ns(msg.header.stamp), rgb)
            self._retry()

    def _on_joints(self, msg: JointState) -> None:
        try:
            self.assembler.add_joint_state(stamp_ns(msg.header.stamp), msg.name, msg.position)
        except Rejected as r:
            self._reject(r.key, str(r))
            return
        self._retry()

    def _retry(self) -> None:
        if self.assembler.pending:
            stamp, task = self._assembling or (self._now(), self.task)
            self._handle(*self.assembler.retry(task, stamp))
            if not self.assembler.pending:
                self._assembling = None

    def _on_request(self, msg: ChunkRequest) -> None:
        stamp = stamp_ns(msg.header.stamp)
        if stamp in self._answered or (self._assembling is not None and self._assembling[0] == stamp):
            return  # a repeat: its chunk is being computed or was published, or its wrist frame or state is awaited
        if self._request is not None and self._request[0] == stamp:
            newest = self.assembler.front.latest()
            seen = "none" if newest is None else f"{newest.stamp / NS:.3f} s"
            self.get_logger().warning(
                f"chunk request at {stamp / NS:.3f} s repeated, and no front frame stamped so has arrived (newest: "
                f"{seen}); is another node publishing on the camera topic?",
                throttle_duration_sec=10.0,
            )
        self._request = (stamp, msg.task.strip() or self.task)
        self._serve_request()

    def _serve_request(self) -> None:
        """Offer the requested observation once its front frame is here (wrist frame and state may follow).

        "now" is the request's stamp: a lock-step simulator waits for the answer, so nothing is stale. A request
        whose observation is refused stays unanswered, so the simulator's repeat of it is served again.
        """
        if self._request is None:
            return
        stamp, task = self._request
        frame = self.assembler.front.nearest(stamp)
        if frame is None or frame.stamp != stamp:
            return
        self._request = None
        self._assembling = (stamp, task)  # before the offer: a retry of the pending observation uses it
        self._handle(*self.assembler.offer(frame, task, stamp))  # replaces an older request still waiting
        if not self.assembler.pending:
            self._assembling = None

    def _handle(self, obs: Observation | None, rejected: list[Rejected]) -> None:
        for r in rejected:
            self._reject(r.key, str(r))
        if obs is not None:
            if self.trigger == "request":
                self._answered.append(obs.stamp)
            self._last_observation = obs.stamp
            self.worker.submit(obs)

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _set_task(self, task: str) -> None:
        task = task.strip()
        if task != self.task:
            self.task = task
            self.get_logger().info(f"task: {task!r}")

    def _on_task(self, msg: String) -> None:
        self._set_task(msg.data)

    def _on_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == "task":
                if p.type_ != Parameter.Type.STRING:
                    return SetParametersResult(successful=False, reason="task must be a string")
                self._set_task(p.value)
            elif p.name == "dry_run":
                if p.type_ != Parameter.Type.BOOL:
                    return SetParametersResult(successful=False, reason="dry_run must be a boolean")
                self.dry_run = p.value
                self.get_logger().info(f"dry_run {self.dry_run}")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------------ inference
    def _infer(self, obs: Observation) -> None:
        result = self.model.predict_chunk(obs.task, obs.state, obs.front, obs.wrist, self.mode)
        rows = self.io.to_chunk_rows(result.actions, obs.q)
        if not np.all(np.isfinite(rows)):
            raise ValueError("the chunk holds non-finite values")
        self._publish(obs, rows, result.timings["total_ms"] / 1e3)

    def _on_error(self, obs: Observation, exc: Exception) -> None:
        self._reject("inference_error", f"inference failed: {type(exc).__name__}: {exc}", error=True)

    def _publish(self, obs: Observation, positions: np.ndarray, inference_time: float) -> None:
        dt = self.io.control_period
        self.seq += 1
        msg = ActionChunk()
        msg.header.stamp = to_stamp(obs.stamp)
        msg.names = self.io.chunk_names
        msg.action_space = self.io.action_space
        msg.dt = dt
        msg.start_step = 0
        msg.horizon, msg.dim = positions.shape
        msg.data = positions.astype(np.float32).ravel().tolist()
        msg.seq = self.seq
        msg.inference_time = inference_time
        msg.dry_run = self.dry_run
        self.chunk_pub.publish(msg)
        if self.publish_trajectory and not msg.dry_run and self.io.joint_actions:
            self.traj_pub.publish(self._trajectory(msg.header, positions, dt))
        latency = (self.get_clock().now().nanoseconds - obs.stamp) / NS
        self.latency.add(latency)
        self.overhead.add(latency - inference_time)
        self.inference.add(inference_time)
        self.chunk_rate.tick(time.monotonic())

    def _trajectory(self, header, positions: np.ndarray, dt: float) -> JointTrajectory:
        traj = JointTrajectory(header=header, joint_names=self.io.names)
        for i, row in enumerate(positions):
            ns = round(i * dt * NS)
            point = JointTrajectoryPoint(positions=row.tolist())
            point.time_from_start = Duration(sec=ns // NS, nanosec=ns % NS)
            traj.points.append(point)
        return traj

    # ------------------------------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        if self.trigger == "frame":  # requested observations never age: their "now" is the request's stamp
            self._retry()  # refuse a front frame that waited too long for its wrist frame or joint state
        errors = self.rejections.counts.get("inference_error", 0)
        rate = self.chunk_rate.rate(time.monotonic())
        if errors > self._errors_seen:
            level, message = DiagnosticStatus.ERROR, self.rejections.last_message["inference_error"]
        elif rate > 0:
            level, message = DiagnosticStatus.OK, f"publishing chunks at {rate:.1f} Hz"
        else:
            level = DiagnosticStatus.WARN
            latest = self.rejections.latest
            message = "no chunks" + (f"; last rejection: {latest}" if latest else "")
        self._errors_seen = errors
        values: dict = {
            "chunks": self.seq,
            "chunk_rate_hz": rate,
            "dry_run": self.dry_run,
            "task": self.task,
            "observations_dropped": self.worker.dropped,
            "rejections": self.rejections.total,
        }
        for name, stats in (
            ("latency_s", self.latency),
            ("overhead_s", self.overhead),
            ("inference_s", self.inference),
        ):
            for k, v in stats.summary().items():
                values[f"{name}_{k}"] = v
        values.update({f"rejected_{k}": v for k, v in sorted(self.rejections.counts.items())})
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [diagnostic_status(f"rynnvla_ros: {self.get_name()}", "policy", level, message, values)]
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Stop the inference thread."""
        self.worker.close()
