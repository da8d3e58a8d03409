"""``so100_leader_teleop`` node: reads an SO100/SO101 leader arm and commands the follower to track it.

The leader is read through LeRobot's ``SOLeader`` (:mod:`rynnvla_ros.control.leader_arm`) and converted to radians
with the follower backend's unit conversion. Every reading is published as the leader's joint state (the action
source of recorded demonstrations) and, unless ``publish_trajectory`` is false, as a one-point trajectory that
``so100_controller`` executes through its safety filter: the point is due ``lookahead`` seconds after the reading.
A missing or failing bus is logged and retried with exponential backoff; the node keeps running, and publishes
nothing until the first reading.

Topics (relative; the record profile remaps them):
  joint_states      sensor_msgs/JointState           out, every reading: leader positions (rad), stamped at the read
  joint_trajectory  trajectory_msgs/JointTrajectory  out, every reading: one point, time_from_start = lookahead
  /diagnostics      diagnostic_msgs/DiagnosticArray  out: connection, attempts, read rate and failures

Parameters:
  port (str, "/dev/ttyACM1")         serial port of the leader's Feetech bus
  leader_id (str, "so100_leader")    LeRobot teleoperator id: the calibration file is <calibration_dir>/<leader_id>.json
  calibration_dir (str, "")          empty: LeRobot's default (~/.cache/huggingface/lerobot/calibration/teleoperators/
                                     so_leader)
  rate (float, 50.0)                 Hz of reading and publishing
  lookahead (float, 0.1)             s after the reading at which the trajectory point is due (> 0; covers transport)
  publish_trajectory (bool, true)    also command the follower (false: only publish the leader's joint states)
  retry_period (float, 1.0)          s before the first reconnection attempt; doubles up to max_retry_period
  max_retry_period (float, 10.0)     s, longest delay between attempts
  max_read_failures (int, 5)         failed reads in a row after which the bus is reopened
  num_read_retries (int, 2)          LeRobot's immediate retries of a failed bus read
  gripper_range (float[2])           rad of LeRobot's gripper 0 % and 100 % (default: the URDF gripper limits)
  joint_directions (float[6], 1.0)   sign of each joint between LeRobot degrees and the URDF
  joint_offsets (float[6], 0.0)      rad added to each joint after the unit conversion
  diagnostics_period (float, 1.0)    s between /diagnostics messages
"""

from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.time import Time
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.leader_arm import LeaderArm, LeaderConfig, LeaderLink, LinkConfig
from rynnvla_ros.control.lerobot_backend import UnitConversion
from rynnvla_ros.control.rate import RateMeter
from rynnvla_ros.diagnostics import diagnostic_status


class So100LeaderTeleopNode(Node):
    """Thin ROS shell around :class:`~rynnvla_ros.control.leader_arm.LeaderLink`."""

    def __init__(self, arm: LeaderArm | None = None, **kwargs) -> None:
        super().__init__("so100_leader_teleop", **kwargs)
        limits = desc.joint_limits()
        grip = desc.JOINT_NAMES.index(desc.GRIPPER)
        p = {
            name: self.declare_parameter(name, value).value
            for name, value in {
                "port": "/dev/ttyACM1",
                "leader_id": "so100_leader",
                "calibration_dir": "",
                "rate": 50.0,
                "lookahead": 0.1,
                "publish_trajectory": True,
                "retry_period": 1.0,
                "max_retry_period": 10.0,
                "max_read_failures": 5,
                "num_read_retries": 2,
                "gripper_range": [float(limits.lower[grip]), float(limits.upper[grip])],
                "joint_directions": [1.0] * desc.N_JOINTS,
                "joint_offsets": [0.0] * desc.N_JOINTS,
                "diagnostics_period": 1.0,
            }.items()
        }
        if p["lookahead"] <= 0 or p["diagnostics_period"] <= 0:
            raise ValueError("lookahead and diagnostics_period must be > 0 s")
        self.lookahead = float(p["lookahead"])
        self.ahead = Duration(nanoseconds=round(self.lookahead * 1e9)).to_msg()
        self.publish_trajectory = bool(p["publish_trajectory"])
        self.arm = arm or LeaderArm(
            LeaderConfig(
                port=p["port"],
                leader_id=p["leader_id"],
                calibration_dir=p["calibration_dir"],
                num_read_retries=int(p["num_read_retries"]),
                units=UnitConversion(
                    gripper_range=tuple(p["gripper_range"]),
                    directions=tuple(p["joint_directions"]),
                    offsets=tuple(p["joint_offsets"]),
                ),
            )
        )
        qos = QoSProfile(depth=10)
        self.state_pub = self.create_publisher(JointState, "joint_states", qos)
        self.trajectory_pub = self.create_publisher(JointTrajectory, "joint_trajectory", qos)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos)
        self.read_rate = RateMeter()
        self.published = 0
        self.link = LeaderLink(
            self.arm,
            LinkConfig(
                rate=float(p["rate"]),
                retry_period=float(p["retry_period"]),
                max_retry_period=float(p["max_retry_period"]),
                max_read_failures=int(p["max_read_failures"]),
            ),
            self._on_reading,
            self.get_logger(),
        )
        self.create_timer(float(p["diagnostics_period"]), self._publish_diagnostics)
        self.link.start()
        self.get_logger().info(
            f"leader arm on {self.arm.config.port} at {p['rate']:g} Hz"
            + (f", commanding the follower {self.lookahead:g} s ahead" if self.publish_trajectory else "")
        )

    def _on_reading(self, positions: np.ndarray, wall_ns: int) -> None:
        if not self.context.ok():  # shutting down: the reader thread may deliver one last reading
            return
        self.read_rate.tick(time.monotonic())
        stamp = Time(nanoseconds=wall_ns).to_msg()
        state = JointState()
        state.header.stamp = stamp
        state.name = list(desc.JOINT_NAMES)
        state.position = [float(v) for v in positions]
        self.state_pub.publish(state)
        if self.publish_trajectory:
            traj = JointTrajectory()
            traj.header.stamp = stamp
            traj.joint_names = list(desc.JOINT_NAMES)
            traj.points = [JointTrajectoryPoint(positions=state.position, time_from_start=self.ahead)]
            self.trajectory_pub.publish(traj)
        self.published += 1

    def _publish_diagnostics(self) -> None:
        link = self.link
        connection = link.status
        level = DiagnosticStatus.OK if link.connected else DiagnosticStatus.ERROR
        values = {
            "connection": connection,
            "port": self.arm.config.port,
            "readings": link.readings,
            "read_rate_hz": self.read_rate.rate(time.monotonic()),
            "read_failures": link.total_read_failures,
            "commanding": str(self.publish_trajectory).lower(),
        }
        status = diagnostic_status(f"{self.get_name()}: leader arm", self.arm.name, level, connection, values)
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self.diag_pub.publish(msg)

    def close(self) -> None:
        """Stop reading and release the leader's bus."""
        self.link.stop()
