"""Parameters and helpers shared by the ``policy`` and ``world_model`` nodes (model, robot I/O, stamps, images).

Model parameters:
  checkpoint (str, "")            directory written by rynnvla_model.checkpoint.save_pretrained
  official_checkpoint (str, "")   or an official RynnVLA-002 checkpoint directory, read by the importer with:
  tokenizer_dir (str, "")           the release's chameleon/tokenizer folder (text_tokenizer.json, vqgan.yaml/.ckpt)
  norm_stats (str, "")              norm_stats.json with the action (and state) min/max
  action_dim, time_horizon (int, 0) expected A and K of an official checkpoint (0: as its config.json says)
  image_size (int, 256)             image side of an official checkpoint (256 VLA, 512 world model)
  device (str, "auto")            auto (cuda when available), cpu, cuda or cuda:N
  dtype (str, "auto")             auto (the model package's default for the device), float32, bfloat16, float16
  cpu_threads (int, 0)            torch's CPU threads in this node's process (0: torch's default, one per core).
                                  config/policy.yaml and world_model.yaml set 1: on 2 cores beside the twin a chunk
                                  took 0.06 s with 1 thread, 0.19 s with 2 (medians; several processes' threads thrash)

Robot I/O parameters (rynnvla_ros/inference/robot_io.py). ``robot_io_file`` or, when it is empty, the checkpoint's
``robot_io.json`` is used if it exists, and then all the other parameters below are ignored:
  robot_io_file (str, "")         a robot_io.json to use instead of the checkpoint's
  robot_io_preset (str, "")       without either file: "libero" (8-d state, 7-d end-effector actions, history 2:
                                  rynnvla_ros/libero/protocol.py), or "" for the parameters below
  joint_names (str[], SO100)      model dimension order
  joint_scale, joint_offset (float[], unset)  model = scale * rad + offset per joint; unset: LeRobot units
                                  (degrees; the gripper 0-100 % of its URDF range)
  relative_joints (str[], the 5 SO100 arm joints)  action dims predicted as deltas to the observed state
  control_period (float, 1/30)    s between chunk steps and between history frames
  history (int, 1)                frames per camera in the prompt
  cameras (str[], [front, wrist]) views in the prompt
  use_state (bool, true)          whether the prompt holds the joint state
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from rynnvla_model.image_tokenizer import resize
from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.image_conversion import image_to_rgb
from rynnvla_ros.inference.chunks import Chunk
from rynnvla_ros.inference.history import NS
from rynnvla_ros.inference.model_cache import ModelSpec
from rynnvla_ros.inference.robot_io import ROBOT_IO_FILE, JointMap, RobotIO, RobotIOError

ROBOT_IO_PRESETS = ("", "libero")
# Joint states: best effort matches reliable and best-effort publishers alike; the newest few are kept.
SENSOR_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
IMAGE_RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def declare_image_qos(node: Node) -> QoSProfile:
    """Declare ``image_qos`` and return the image subscriptions' QoS (depth 2: the newest frames only).

    reliable (default) matches the camera and simulator nodes of this package; large images sent best effort are
    split into UDP fragments and often lost (Fast DDS's shared memory segments hold 0.5 MB), so use best_effort
    only for cameras that publish best effort (sensor-data QoS), with which a reliable subscription cannot connect.
    """
    name = node.declare_parameter("image_qos", "reliable").value
    if name not in IMAGE_RELIABILITY:
        raise ValueError(f"image_qos must be one of {', '.join(IMAGE_RELIABILITY)}, got {name!r}")
    return QoSProfile(depth=2, reliability=IMAGE_RELIABILITY[name])


def declare_cpu_threads(node: Node) -> None:
    """Declare ``cpu_threads`` and, when it is > 0, set torch's CPU threads of this process to it."""
    threads = int(node.declare_parameter("cpu_threads", 0).value)
    if threads < 0:
        raise ValueError(f"cpu_threads must be >= 0, got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)


def declare_model_spec(node: Node) -> ModelSpec:
    """Declare the model parameters of ``node`` and return them."""
    values = {
        "checkpoint": "",
        "official_checkpoint": "",
        "tokenizer_dir": "",
        "norm_stats": "",
        "action_dim": 0,
        "time_horizon": 0,
        "image_size": 256,
        "device": "auto",
        "dtype": "auto",
    }
    got = {k: node.declare_parameter(k, v).value for k, v in values.items()}
    return ModelSpec(**got)


def declare_robot_io(node: Node, spec: ModelSpec) -> tuple[RobotIO, str]:
    """Declare the robot I/O parameters; the mapping from ``robot_io_file``, the checkpoint or the parameters.

    Returns the mapping and where it came from (for the log).
    """
    path = node.declare_parameter("robot_io_file", "").value
    names = node.declare_parameter("joint_names", list(desc.JOINT_NAMES)).value
    scale = node.declare_parameter("joint_scale", Parameter.Type.DOUBLE_ARRAY, ParameterDescriptor()).value
    offset = node.declare_parameter("joint_offset", Parameter.Type.DOUBLE_ARRAY, ParameterDescriptor()).value
    arm = [n for n in desc.JOINT_NAMES if n != desc.GRIPPER]
    relative = node.declare_parameter("relative_joints", arm).value
    period = node.declare_parameter("control_period", 1.0 / 30.0).value
    history = node.declare_parameter("history", 1).value
    cameras = node.declare_parameter("cameras", ["front", "wrist"]).value
    use_state = node.declare_parameter("use_state", True).value
    preset = node.declare_parameter("robot_io_preset", "").value
    if preset not in ROBOT_IO_PRESETS:
        raise RobotIOError(f"robot_io_preset must be one of {ROBOT_IO_PRESETS}, got {preset!r}")
    if path:
        return RobotIO.load(path), str(path)
    beside = spec.model_dir / ROBOT_IO_FILE
    if beside.is_file():
        return RobotIO.load(beside), str(beside)
    if preset == "libero":
        from rynnvla_ros.libero.protocol import libero_robot_io

        return libero_robot_io(), f"the libero preset (no {beside})"
    names, relative = list(names), list(relative)
    if scale is None and offset is None:
        gripper = desc.GRIPPER if desc.GRIPPER in names else None
        limits = desc.joint_limits()
        g = desc.JOINT_NAMES.index(desc.GRIPPER)
        rng = (float(limits.lower[g]), float(limits.upper[g]))
        io = RobotIO.lerobot(names, gripper, rng, relative, period, history, cameras, use_state)
        return io, f"parameters (no {beside}; LeRobot units)"
    scale = list(scale) if scale is not None else [1.0] * len(names)
    offset = list(offset) if offset is not None else [0.0] * len(names)
    if not len(scale) == len(offset) == len(names):
        raise RobotIOError(
            f"joint_scale ({len(scale)}) and joint_offset ({len(offset)}) need one value per joint "
            f"of joint_names ({len(names)})"
        )
    unknown = sorted(set(relative) - set(names))
    if unknown:
        raise RobotIOError(f"relative_joints {', '.join(unknown)} are not in joint_names")
    joints = tuple(JointMap(n, float(s), float(o), n in relative) for n, s, o in zip(names, scale, offset, strict=True))
    return RobotIO(joints, period, history, tuple(cameras), use_state), f"parameters (no {beside})"


def stamp_ns(stamp: TimeMsg) -> int:
    """A ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * NS + int(stamp.nanosec)


def chunk_from_msg(msg) -> Chunk:
    """The :class:`Chunk` of an ``ActionChunk`` message; ChunkError when its fields are inconsistent."""
    return Chunk.from_fields(
        stamp_ns(msg.header.stamp), msg.names, msg.action_space, msg.dt, msg.start_step, msg.horizon, msg.dim, msg.data
    )


def to_stamp(ns: int) -> TimeMsg:
    """Integer nanoseconds as ``builtin_interfaces/Time``."""
    return TimeMsg(sec=int(ns // NS), nanosec=int(ns % NS))


def model_image(msg: Image, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """An Image as uint8 RGB of the model's ``(height, width)``; True when it had to be resized (squashed)."""
    rgb = image_to_rgb(msg)
    if rgb.shape[:2] == tuple(size):
        return rgb, False
    return resize(rgb, size), True
