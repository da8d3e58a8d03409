"""``chunk_visualizer`` node: the planned action chunk as RViz markers - the gripper's path and a ghost of the arm.

For every action chunk (at most ``max_rate`` per second; newer chunks replace older ones) it computes the joint
targets the controller will aim at (deltas added to the joint state nearest the chunk's stamp, joints the chunk
lacks kept there, targets clipped into the URDF limits) and the gripper tool frame of each by forward kinematics
(rynnvla_ros/viewing/planned_path.py), and publishes them in ``base_link``. Dry-run chunks are drawn in orange,
executed ones in green; the markers expire ``hold_time`` s after the chunk's last step. Chunks that cannot be drawn
(not joint space, NaN, no joint state for deltas) are logged with the reason; the node keeps running.

Topics (relative names; launch profiles remap them to rynnvla_ros.topics):
  action_chunk   rynnvla_ros/ActionChunk              in
  joint_states   sensor_msgs/JointState               in (rad, by name; for deltas and joints a chunk lacks)
  planned_path   visualization_msgs/MarkerArray       out: namespace "path" (LINE_STRIP through the gripper
                                                      positions, coloured from first to last step), "steps"
                                                      (SPHERE_LIST, one per step), "ghost" (LINE_STRIP through
                                                      the arm's links at the last step, when ghost is true)

Parameters:
  frame_id (str, "base_link")    frame of the markers (the URDF root; robot_state_publisher's TF tree)
  max_rate (float, 10.0)         Hz: chunks arriving faster are skipped (the newest is drawn at the next slot)
  hold_time (float, 1.0)         s the markers stay after the chunk's last step
  line_width (float, 0.004)      m, width of the path
  point_size (float, 0.01)       m, diameter of the step spheres
  ghost (bool, true)             also draw the arm at the last step
"""

from __future__ import annotations

import threading
import time

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from rynnvla_ros.inference.chunks import ChunkError
from rynnvla_ros.inference.history import NS, StampedBuffer
from rynnvla_ros.inference.observation import Rejections
from rynnvla_ros.msg import ActionChunk
from rynnvla_ros.nodes.model_common import chunk_from_msg, stamp_ns, to_stamp
from rynnvla_ros.viewing.kinematics import joint_positions_by_name
from rynnvla_ros.viewing.planned_path import FRAME, Plan, path_colors, plan_chunk

STATE_SPAN = 2 * NS  # joint states kept to find the one nearest a chunk's stamp


class ChunkVisualizerNode(Node):
    """Thin ROS shell around :func:`rynnvla_ros.viewing.planned_path.plan_chunk`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("chunk_visualizer", **kwargs)
        self.frame_id = str(self.declare_parameter("frame_id", FRAME).value)
        max_rate = float(self.declare_parameter("max_rate", 10.0).value)
        self.hold_time = float(self.declare_parameter("hold_time", 1.0).value)
        self.line_width = float(self.declare_parameter("line_width", 0.004).value)
        self.point_size = float(self.declare_parameter("point_size", 0.01).value)
        self.ghost = bool(self.declare_parameter("ghost", True).value)
        if max_rate <= 0 or self.hold_time < 0 or self.line_width <= 0 or self.point_size <= 0:
            raise ValueError("max_rate, line_width and point_size must be > 0, hold_time >= 0")
        self.period = 1.0 / max_rate
        self.states = StampedBuffer[dict[str, float]](STATE_SPAN, 512)
        self.rejections = Rejections()
        self.drawn = 0
        self._pending: ActionChunk | None = None
        self._last_draw = -np.inf
        self._lock = threading.Lock()
        self.pub = self.create_publisher(MarkerArray, "planned_path", QoSProfile(depth=5))
        sensor = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(JointState, "joint_states", self._on_joints, sensor)
        self.create_subscription(ActionChunk, "action_chunk", self._on_chunk, 10)
        self.create_timer(self.period / 2, self._draw_pending)
        self.get_logger().info(f"drawing action chunks in {self.frame_id} at up to {max_rate:g} Hz")

    def _on_joints(self, msg: JointState) -> None:
        with self._lock:
            self.states.add(stamp_ns(msg.header.stamp), joint_positions_by_name(msg.name, msg.position))

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self._lock:
            self._pending = msg
        self._draw_pending()

    def _draw_pending(self) -> None:
        now = time.monotonic()
        with self._lock:
            msg = self._pending
            if msg is None or now - self._last_draw < self.period:
                return
            self._pending, self._last_draw = None, now
            stamp = stamp_ns(msg.header.stamp)
            nearest = self.states.nearest(stamp)
        try:
            chunk = chunk_from_msg(msg)
            plan = plan_chunk(chunk, nearest.value if nearest is not None else None, msg.dry_run)
        except ChunkError as exc:
            if self.rejections.add("bad_chunk", str(exc)):
                self.get_logger().warning(f"chunk {msg.seq} not drawn: {exc} [{self.rejections.total} so far]")
            return
        self.pub.publish(self.markers(plan))
        self.drawn += 1

    def markers(self, plan: Plan) -> MarkerArray:
        """The MarkerArray of a plan."""
        life = plan.lifetime(self.get_clock().now().nanoseconds, self.hold_time)
        lifetime = Duration(sec=int(life), nanosec=int((life % 1) * 1e9))
        colors = path_colors(len(plan.gripper), plan.dry_run)

        def marker(ns: str, kind: int, points: np.ndarray, rgba: np.ndarray, scale: float) -> Marker:
            m = Marker(ns=ns, id=0, type=kind, action=Marker.ADD, lifetime=lifetime, frame_locked=False)
            m.header.frame_id = self.frame_id
            m.header.stamp = to_stamp(int(plan.times[0]))
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = scale
            m.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points]
            m.colors = [ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a)) for r, g, b, a in rgba]
            m.color = m.colors[-1]
            return m

        out = MarkerArray()
        out.markers.append(marker("path", Marker.LINE_STRIP, plan.gripper, colors, self.line_width))
        out.markers.append(marker("steps", Marker.SPHERE_LIST, plan.gripper, colors, self.point_size))
        if self.ghost:
            ghost = np.tile(path_colors(1, plan.dry_run, alpha=0.5), (len(plan.final_pose), 1))
            out.markers.append(marker("ghost", Marker.LINE_STRIP, plan.final_pose, ghost, 3 * self.line_width))
        return out
