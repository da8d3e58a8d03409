"""``so100_controller`` node: runs the SO100 arm, real (LeRobot/Feetech) or simulated (MuJoCo), from action chunks.

Every control tick it reads the arm, publishes the joint state, samples the chunk plan and sends one command through
the safety filter (URDF position limits, per-step and velocity limits, ramp-in, command timeout, latched e-stop;
never a command before the first measured joint state). The logic lives in :mod:`rynnvla_ros.control`.

Topics (relative names; launch profiles remap them to :mod:`rynnvla_ros.topics`):
  joint_states         sensor_msgs/JointState   out, every control tick: positions (rad), and in simulation
                                                velocities (rad/s) and actuator forces (N m)
  joint_command        sensor_msgs/JointState   out, the position command sent to the arm each tick (rad)
  action_chunk         rynnvla_ros/ActionChunk  in: joint_positions or joint_deltas (relative to the joint state at
                                                header.stamp); row i is due at stamp + (start_step + i) * dt;
                                                dry_run chunks are ignored, other action spaces rejected
  joint_trajectory     trajectory_msgs/JointTrajectory  in: positions of each point, due at stamp + time_from_start
  /diagnostics         diagnostic_msgs/DiagnosticArray  out, every diagnostics_period: state, e-stop, connection,
                                                last chunk age, accepted / rejected / clipped counts, rates
  front/image_raw, front/camera_info, wrist/image_raw, wrist/camera_info
                       sensor_msgs/Image (rgb8), CameraInfo   out, simulation only, at camera_rate

  task_state           rynnvla_ros/TaskState      out, simulation with the task's objects, every
                                                task_state_period: block pose, circle, success

Services:
  ~/estop       std_srvs/Trigger         latch the e-stop: hold the measured position, refuse chunks
  ~/reset       std_srvs/Trigger         release it; motion restarts from the measured state with a ramp-in
  ~/reset_task  rynnvla_ros/TaskReset    simulation: a new block-in-circle episode laid out from a seed, the arm
                                         at task_positions; the plan is dropped and motion restarts with a ramp-in

Parameters:
  hardware (str, "sim")           sim (MuJoCo twin) or real (LeRobot SO100/SO101 follower)
  control_rate (float, 100.0)     Hz of reading, joint_states and commands
  blend (str, "crossfade")        how a new chunk meets the one in progress: latest | crossfade | weighted
  crossfade_time (float, 0.2)     s over which crossfade moves from the old plan to the new one
  blend_weight (float, 0.7)       weight of the new chunk where weighted blending overlaps the old one
  command_timeout (float, 1.0)    s without an accepted chunk after which the plan is cut and the arm holds its
                                  last command (so keep it above the duration of the chunks a policy sends)
  state_timeout (float, 0.5)      s without a joint reading after which no command is sent
  max_velocity (float, 1.0)       rad/s for every joint (never above the URDF's velocity limits)
  max_step (float, 0.05)          rad a joint may move per control tick
  limit_margin (float, 0.0)       rad kept clear of the URDF position limits (chunk targets are clipped)
  ramp_time (float, 2.0)          s over which the velocity limit grows from 5% to 100% after start or reset
  max_chunk_steps (int, 1000)     longer chunks are rejected
  max_future (float, 5.0)         s a chunk may start ahead of now; later ones are rejected (clock mismatch)
  retry_period (float, 1.0)       s between attempts to connect the arm
  max_read_failures (int, 5)      failed reads in a row after which the arm is reconnected
  diagnostics_period (float, 1.0) s between /diagnostics messages
  simulation (hardware sim):
  scene (str, "")                 MJCF scene the arm is attached to; empty: the package's sim/so100_scene.xml
  camera_rate (float, 30.0)       Hz of the rendered cameras (frames that cannot be rendered in time are dropped)
  image_width (int, 256)          rendered image width, pixels
  image_height (int, 256)         rendered image height, pixels
  cameras (str[], [front, wrist]) cameras to render and publish
  mesh_simplify (float, 0.001)    m, vertex-clustering cell for the arm meshes (0: meshes as shipped)
  wrist_fovy (float, 70.0)        vertical field of view of the wrist camera, degrees
  initial_positions (float[6])    joint positions the simulated arm starts in (rad; default: folded rest pose)
  task_positions (float[6])       where ~/reset_task puts the arm (rad; default: ready pose above the table)
  task_state_period (float, 0.1)  s between task_state messages
  task_seed (int, -1)             >= 0: the first control tick lays the task out from this seed (as ~/reset_task);
                                  -1: the scene's own layout and initial_positions
  real arm (hardware real):
  port (str, "/dev/ttyACM0")      serial port of the follower arm's bus
  robot_id (str, "so100_follower")      LeRobot robot id: the calibration file is <calibration_dir>/<robot_id>.json
  calibration_dir (str, "")       empty: LeRobot's default (~/.cache/huggingface/lerobot/calibration/robots/so_follower)
  gripper_range (float[2])        rad of LeRobot's gripper 0 % and 100 % (default: the URDF gripper limits)
  joint_directions (float[6], 1.0)  sign of each joint between LeRobot degrees and the URDF
  joint_offsets (float[6], 0.0)   rad added to each joint after the unit conversion
  num_read_retries (int, 2)       LeRobot's immediate retries of a failed bus read
  disable_torque_on_close (bool, true)  LeRobot's disable_torque_on_disconnect
"""

from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.backend import Backend, BackendError
from rynnvla_ros.control.chunk_schedule import ChunkLimits
from rynnvla_ros.control.controller import ArmController, ControllerConfig, State
from rynnvla_ros.control.rate import RateMeter
from rynnvla_ros.control.safety import SafetyConfig
from rynnvla_ros.control.supervisor import BackendSupervisor
from rynnvla_ros.diagnostics import diagnostic_status
from rynnvla_ros.image_conversion import array_to_image
from rynnvla_ros.msg import ActionChunk, TaskState
from rynnvla_ros.srv import TaskReset
from rynnvla_ros.tasks.block_in_circle import CIRCLE_RADIUS, TASK_TEXT

HARDWARE = ("sim", "real")
REJECTION_LOG_PERIOD = 5.0  # s between two log lines of the same rejection reason


class So100ControllerNode(Node):
    """Thin ROS shell around :class:`~rynnvla_ros.control.controller.ArmController` and an arm backend."""

    OWN_PROCESS = True  # rynnvla-bringup runs the control loop in its own process: model threads must not starve it

    def __init__(self, backend: Backend | None = None, **kwargs) -> None:
        super().__init__("so100_controller", **kwargs)
        p = self._declare_all()
        if p["hardware"] not in HARDWARE:
            raise ValueError(f"hardware must be one of {', '.join(HARDWARE)}, got {p['hardware']!r}")
        if p["control_rate"] <= 0 or p["diagnostics_period"] <= 0:
            raise ValueError("control_rate and diagnostics_period must be > 0")
        self.controller = ArmController(
            ControllerConfig(
                blend=p["blend"],
                crossfade_time=p["crossfade_time"],
                blend_weight=p["blend_weight"],
                command_timeout=p["command_timeout"],
                state_timeout=p["state_timeout"],
                chunk_limits=ChunkLimits(max_steps=p["max_chunk_steps"], max_future=p["max_future"]),
                safety=SafetyConfig(
                    max_velocity=p["max_velocity"],
                    max_step=p["max_step"],
                    limit_margin=p["limit_margin"],
                    ramp_time=p["ramp_time"],
                ),
            ),
            desc.joint_limits(),
        )
        self.backend = backend if backend is not None else _make_backend(p)
        self.frame_ids = {c: f"{c}_camera_optical_frame" for c in self.backend.camera_names}

        qos = QoSProfile(depth=10)
        self.state_pub = self.create_publisher(JointState, "joint_states", qos)
        self.command_pub = self.create_publisher(JointState, "joint_command", qos)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos)
        self.image_pubs = {
            c: (
                self.create_publisher(Image, f"{c}/image_raw", QoSProfile(depth=5)),
                self.create_publisher(CameraInfo, f"{c}/camera_info", QoSProfile(depth=5)),
            )
            for c in self.backend.camera_names
        }
        inputs = MutuallyExclusiveCallbackGroup()
        self.create_subscription(ActionChunk, "action_chunk", self._on_chunk, qos, callback_group=inputs)
        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, qos, callback_group=inputs)
        self.create_service(Trigger, "~/estop", self._on_estop, callback_group=inputs)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=inputs)
        control = MutuallyExclusiveCallbackGroup()  # a task reset must not interleave with a control tick
        self.task_positions = np.asarray(p["task_positions"], dtype=float)
        self._start_seed = int(p["task_seed"]) if p["hardware"] == "sim" and p["task_seed"] >= 0 else None
        if p["hardware"] == "sim":
            if self.task_positions.shape != (desc.N_JOINTS,):
                raise ValueError(f"task_positions needs {desc.N_JOINTS} values, got {self.task_positions.size}")
            self.task_pub = self.create_publisher(TaskState, "task_state", qos)
            self.create_service(TaskReset, "~/reset_task", self._on_reset_task, callback_group=control)
            self.create_timer(p["task_state_period"], self._publish_task_state, MutuallyExclusiveCallbackGroup())

        self.control_rate = RateMeter()
        self.frame_rate = RateMeter()
        self._rejections: dict[str, float] = {}
        self.supervisor = BackendSupervisor(
            self.backend,
            self.get_logger(),
            retry_period=p["retry_period"],
            max_read_failures=p["max_read_failures"],
            on_connect=lambda b: b.start_cameras(self._on_frames),
        )
        self.create_timer(1.0 / p["control_rate"], self._tick, callback_group=control)
        self.create_timer(p["diagnostics_period"], self._publish_diagnostics, MutuallyExclusiveCallbackGroup())
        self.supervisor.start()
        self.get_logger().info(
            f"{self.backend.name} arm, control at {p['control_rate']:g} Hz, blend {p['blend']}, "
            f"max velocity {p['max_velocity']:g} rad/s; waiting for the first joint state before any command"
        )

    def _declare_all(self) -> dict:
        limits = desc.joint_limits()
        grip = desc.JOINT_NAMES.index(desc.GRIPPER)
        defaults = {
            "hardware": "sim",
            "control_rate": 100.0,
            "blend": "crossfade",
            "crossfade_time": 0.2,
            "blend_weight": 0.7,
            "command_timeout": 1.0,
            "state_timeout": 0.5,
            "max_velocity": 1.0,
            "max_step": 0.05,
            "limit_margin": 0.0,
            "ramp_time": 2.0,
            "max_chunk_steps": 1000,
            "max_future": 5.0,
            "retry_period": 1.0,
            "max_read_failures": 5,
            "diagnostics_period": 1.0,
            "scene": "",
            "camera_rate": 30.0,
            "image_width": 256,
            "image_height": 256,
            "cameras": list(desc.CAMERAS),
            "mesh_simplify": 0.001,
            "wrist_fovy": 70.0,
            "initial_positions": list(desc.REST_POSITIONS),
            "task_positions": list(desc.READY_POSITIONS),
            "task_state_period": 0.1,
            "task_seed": -1,
            "port": "/dev/ttyACM0",
            "robot_id": "so100_follower",
            "calibration_dir": "",
            "gripper_range": [float(limits.lower[grip]), float(limits.upper[grip])],
            "joint_directions": [1.0] * desc.N_JOINTS,
            "joint_offsets": [0.0] * desc.N_JOINTS,
            "num_read_retries": 2,
            "disable_torque_on_close": True,
        }
        return {name: self.declare_parameter(name, value).value for name, value in defaults.items()}

    # ------------------------------------------------------------------------------------------ control loop
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _tick(self) -> None:
        reading = self.supervisor.read()
        now = self._now()
        if reading is None:
            self.controller.check_state(now)  # notices a lost state; nothing is sent
            return
        if self._start_seed is not None:  # the simulation runs: lay the task out, start from the next reading
            seed, self._start_seed = self._start_seed, None
            self._on_reset_task(TaskReset.Request(seed=seed), TaskReset.Response())
            return
        self.control_rate.tick(time.monotonic())
        self.controller.on_state(now, reading.positions)
        stamp = self.get_clock().now().to_msg()
        self.state_pub.publish(_joint_state(stamp, reading.positions, reading.velocities, reading.efforts))
        command = self.controller.step(now)
        if command is not None and self.supervisor.write(command):
            self.command_pub.publish(_joint_state(stamp, command))

    # ------------------------------------------------------------------------------------------ simulated task
    def _on_reset_task(self, request: TaskReset.Request, response: TaskReset.Response) -> TaskReset.Response:
        try:
            layout = self.backend.reset_task(int(request.seed), tuple(self.task_positions))
            self.controller.moved(self._now(), self.backend.read().positions)
        except BackendError as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().warning(f"task reset refused: {exc}")
            return response
        response.success, response.task = True, TASK_TEXT
        response.message = f"task laid out from seed {request.seed}"
        response.block = [*layout.block_xy, layout.block_yaw]
        response.target = list(layout.target_xy)
        self.get_logger().info(
            f"task reset, seed {request.seed}: block at {layout.block_xy[0]:.3f} {layout.block_xy[1]:.3f}, "
            f"circle at {layout.target_xy[0]:.3f} {layout.target_xy[1]:.3f}"
        )
        return response

    def _publish_task_state(self) -> None:
        state = self.backend.task_state()
        if state is None:
            return
        msg = TaskState(seed=int(self.backend.task_seed), target_radius=CIRCLE_RADIUS)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = desc.BASE_LINK
        p, q = state.block_position, state.block_quaternion
        msg.block.position.x, msg.block.position.y, msg.block.position.z = (float(v) for v in p)
        o = msg.block.orientation
        o.w, o.x, o.y, o.z = (float(v) for v in q)
        msg.target.x, msg.target.y = (float(v) for v in state.target_xy)
        msg.inside, msg.resting, msg.held, msg.success = state.inside, state.resting, state.held, state.success
        self.task_pub.publish(msg)

    # ------------------------------------------------------------------------------------------ inputs
    def _on_chunk(self, msg: ActionChunk) -> None:
        verdict = self.controller.submit_chunk(
            self._now(),
            names=list(msg.names),
            action_space=msg.action_space,
            stamp=_seconds(msg.header.stamp),
            dt=msg.dt,
            start_step=msg.start_step,
            horizon=msg.horizon,
            dim=msg.dim,
            data=msg.data,
            dry_run=msg.dry_run,
        )
        self._report(f"chunk {msg.seq}", verdict, dry_run=msg.dry_run)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        verdict = self.controller.submit_trajectory(
            self._now(),
            names=list(msg.joint_names),
            stamp=_seconds(msg.header.stamp),
            times_from_start=[p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points],
            positions=[list(p.positions) for p in msg.points],
        )
        self._report("trajectory", verdict)

    def _report(self, what: str, verdict, dry_run: bool = False) -> None:
        log = self.get_logger()
        if verdict.accepted:
            if "clipped" in verdict.message:  # rclpy: one severity per call site
                log.warning(f"{what}: {verdict.message}")
            else:
                log.debug(f"{what}: {verdict.message}")
            return
        if dry_run:
            log.debug(f"{what}: {verdict.message}")
            return
        now = time.monotonic()
        if now - self._rejections.get(verdict.message, -np.inf) >= REJECTION_LOG_PERIOD:
            self._rejections[verdict.message] = now
            log.warning(f"{what} rejected: {verdict.message}")

    def _on_estop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.message = self.controller.estop(self._now())
        response.success = True
        self.get_logger().warning(response.message)
        return response

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.controller.reset(self._now())
        self.get_logger().info(response.message)
        return response

    # ------------------------------------------------------------------------------------------ outputs
    def _on_frames(self, frames: dict[str, np.ndarray], wall_time: float) -> None:
        stamp = Time(nanoseconds=int(wall_time * 1e9)).to_msg()
        self.frame_rate.tick(time.monotonic())
        for name, rgb in frames.items():
            image = array_to_image(rgb, "rgb8")
            image.header.stamp, image.header.frame_id = stamp, self.frame_ids[name]
            info = CameraInfo()
            info.header = image.header
            info.width, info.height = image.width, image.height
            fx, fy, cx, cy = self.backend.intrinsics(name)
            info.distortion_model = "plumb_bob"
            info.d = [0.0] * 5
            info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
            info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
            image_pub, info_pub = self.image_pubs[name]
            image_pub.publish(image)
            info_pub.publish(info)

    def _publish_diagnostics(self) -> None:
        c = self.controller
        now, mono = self._now(), time.monotonic()
        counters = c.counters
        if c.estopped:
            level, message = DiagnosticStatus.ERROR, State.ESTOP.value
        elif not self.supervisor.connected:
            level, message = DiagnosticStatus.ERROR, self.supervisor.status
        elif c.state in (State.WAITING, State.STATE_LOST):
            level, message = DiagnosticStatus.WARN, c.state.value
        else:
            level, message = DiagnosticStatus.OK, c.state.value
        values = {
            "state": c.state.value,
            "estop": str(c.estopped).lower(),
            "backend": self.backend.name,
            "connection": self.supervisor.status,
            "last_chunk_age_s": f"{c.last_chunk_age(now):.3f}",
            "accepted_chunks": str(counters.accepted),
            "rejected_chunks": str(counters.rejected),
            "dry_run_chunks": str(counters.dry_run),
            "clipped_chunks": str(counters.clipped),
            "skipped_steps": str(counters.skipped_steps),
            "command_timeouts": str(counters.timeouts),
            "last_rejection": counters.last_rejection,
            "read_failures": str(self.supervisor.total_read_failures),
            "control_rate_hz": f"{self.control_rate.rate(mono):.1f}",
        }
        if self.backend.camera_names:
            values["camera_rate_hz"] = f"{self.frame_rate.rate(mono):.1f}"
        status = diagnostic_status(f"{self.get_name()}: arm", self.backend.name, level, message, values)
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self.diag_pub.publish(msg)

    def close(self) -> None:
        """Stop the arm connection (and the simulation threads)."""
        self.supervisor.stop()


def _make_backend(p: dict) -> Backend:
    if p["hardware"] == "sim":
        from rynnvla_ros.control.sim_backend import SimBackend, SimConfig

        return SimBackend(
            SimConfig(
                scene=p["scene"],
                image_width=p["image_width"],
                image_height=p["image_height"],
                camera_rate=p["camera_rate"],
                cameras=tuple(p["cameras"]),
                mesh_simplify=p["mesh_simplify"],
                wrist_fovy=p["wrist_fovy"],
                initial_positions=tuple(p["initial_positions"]),
            )
        )
    from rynnvla_ros.control.lerobot_backend import LeRobotBackend, LeRobotConfig, UnitConversion

    return LeRobotBackend(
        LeRobotConfig(
            port=p["port"],
            robot_id=p["robot_id"],
            calibration_dir=p["calibration_dir"],
            num_read_retries=p["num_read_retries"],
            disable_torque_on_close=p["disable_torque_on_close"],
            units=UnitConversion(
                gripper_range=tuple(p["gripper_range"]),
                directions=tuple(p["joint_directions"]),
                offsets=tuple(p["joint_offsets"]),
            ),
        )
    )


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _joint_state(stamp, positions, velocities=None, efforts=None) -> JointState:
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(desc.JOINT_NAMES)
    msg.position = [float(v) for v in positions]
    if velocities is not None:
        msg.velocity = [float(v) for v in velocities]
    if efforts is not None:
        msg.effort = [float(v) for v in efforts]
    return msg
