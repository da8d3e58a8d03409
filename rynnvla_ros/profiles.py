"""Launch profiles, declared once: their arguments, nodes, parameter files, remappings and conditions.

``launch/<profile>.launch.py`` turns a profile into a launch_ros description (:mod:`rynnvla_ros.launch_builder`)
and ``rynnvla-bringup <profile>`` runs the same nodes in one process (:mod:`rynnvla_ros.bringup`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rynnvla_ros import topics


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
    """

    name: str
    executable: str
    params_file: str = ""
    params: tuple[tuple[str, str], ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    when: When | None = None


@dataclass(frozen=True)
class Profile:
    """A named node graph with its launch arguments."""

    name: str
    description: str
    args: tuple[Arg, ...]
    nodes: tuple[NodeSpec, ...] = field(default=())

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
        return values

    def active_nodes(self, values: dict[str, str]) -> list[NodeSpec]:
        """The nodes whose condition holds for resolved ``values``."""
        return [n for n in self.nodes if n.when is None or n.when.holds(values)]


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
        ("action_chunk", topics.ACTION_CHUNK),
        ("joint_trajectory", topics.JOINT_TRAJECTORY),
        ("front/image_raw", topics.FRONT_IMAGE),
        ("front/camera_info", topics.FRONT_CAMERA_INFO),
        ("wrist/image_raw", topics.WRIST_IMAGE),
        ("wrist/camera_info", topics.WRIST_CAMERA_INFO),
    ),
)

_MODEL_ARGS = (
    Arg("policy", "false", "run the policy node (needs checkpoint)", choices=("true", "false")),
    Arg("world_model", "false", "run the world-model node (needs checkpoint)", choices=("true", "false")),
    Arg("checkpoint", "", "model checkpoint directory (saved by rynnvla_model.checkpoint.save_pretrained)"),
    Arg("task", "", "task instruction given to the policy (also settable on the task topic)"),
    Arg(
        "dry_run",
        "true",
        "publish chunks marked dry-run, which the controller does not execute",
        ("true", "false"),
        type=bool,
    ),
    Arg("device", "auto", "model device: auto, cpu, cuda or cuda:N"),
)
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

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="so100",
            description="SO100 arm: controller (real arm or MuJoCo twin), cameras (real hardware), the model's nodes",
            args=(
                Arg("hardware", "sim", "real arm and cameras, or the MuJoCo twin", choices=("sim", "real")),
                *_CAMERA_ARGS,
                *_ARM_ARGS,
                *_MODEL_ARGS,
            ),
            nodes=(_CONTROLLER, *_CAMERAS, _POLICY, _WORLD_MODEL),
        ),
        Profile(
            name="record",
            description="record teleoperated demonstrations of the SO100 into rosbags",
            args=(
                Arg("hardware", "real", "real arm and cameras, or the MuJoCo twin", choices=("sim", "real")),
                *_CAMERA_ARGS,
                *_ARM_ARGS,
            ),
            nodes=(_CONTROLLER, *_CAMERAS),
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ValueError listing the profiles otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"no profile {name!r}; profiles: {', '.join(PROFILES)}") from None
