"""The block-in-circle task on the SO100 twin (the paper's SO100 block task at our scale): pick up the red block and
put it down inside the blue circle.

The scene (``sim/so100_scene.xml``) holds a free 3 cm cube ``block`` and a mocap disc ``target`` (5 cm radius, no
collisions). :func:`sample_layout` draws their positions from a seed: both on an annulus in front of the arm that a
top-down grasp reaches, at least :data:`MIN_SEPARATION` apart, the block at a random yaw. :class:`BlockInCircle`
applies a layout to a simulation and reports the task's state; the task is solved when the block rests on the table
with its centre inside the circle and the gripper has let go of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import mujoco

TASK_TEXT = "put the red block inside the blue circle"
BLOCK_BODY = "block"
TARGET_BODY = "target"
BLOCK_HALF = 0.015  # m, half the cube's edge (sim/so100_scene.xml)
CIRCLE_RADIUS = 0.05  # m, outer radius of the target disc (sim/so100_scene.xml)
REACH = (0.17, 0.26)  # m, distance from the arm's base axis of block and circle centres
AZIMUTH = 0.6  # rad, largest angle left or right of the arm's forward (+x) axis
MIN_SEPARATION = 0.10  # m between the block's and the circle's centres
REST_HEIGHT = 0.004  # m above its resting height that still counts as on the table
REST_SPEED = 0.05  # m/s below which the block counts as at rest


@dataclass(frozen=True)
class Layout:
    """Where an episode starts: block centre (x, y) and yaw, circle centre (x, y); metres and radians."""

    block_xy: tuple[float, float]
    block_yaw: float
    target_xy: tuple[float, float]


@dataclass(frozen=True)
class TaskState:
    """The task as the simulator sees it."""

    block_position: np.ndarray  # (3,) m
    block_quaternion: np.ndarray  # (4,) w x y z
    target_xy: np.ndarray  # (2,) m
    inside: bool  # the block's centre is within the circle
    resting: bool  # on the table and still
    held: bool  # touching either jaw
    success: bool  # inside, resting and let go


def _sample_point(rng: np.random.Generator) -> np.ndarray:
    r = rng.uniform(*REACH)
    a = rng.uniform(-AZIMUTH, AZIMUTH)
    return np.array([r * np.cos(a), r * np.sin(a)])


def sample_layout(seed: int) -> Layout:
    """The layout of episode ``seed`` (the same seed gives the same layout on every machine)."""
    rng = np.random.default_rng(seed)
    block = _sample_point(rng)
    while True:
        target = _sample_point(rng)
        if np.linalg.norm(target - block) >= MIN_SEPARATION:
            break
    yaw = float(rng.uniform(-np.pi / 4, np.pi / 4))
    return Layout((float(block[0]), float(block[1])), yaw, (float(target[0]), float(target[1])))


class BlockInCircle:
    """Applies layouts to a compiled scene and reads the task's state from its data."""

    def __init__(self, model: mujoco.MjModel, jaw_geoms: tuple[str, ...] = ()) -> None:
        try:
            joint = model.joint(BLOCK_BODY)
            target = model.body(TARGET_BODY)
            self.block_geom = model.geom(BLOCK_BODY).id
        except KeyError as exc:
            raise ValueError(f"the scene has no block-in-circle task objects ({exc})") from None
        self.block_body = model.body(BLOCK_BODY).id
        self.qpos = int(joint.qposadr[0])
        self.qvel = int(joint.dofadr[0])
        self.mocap = int(target.mocapid[0])
        if self.mocap < 0:
            raise ValueError(f"body {TARGET_BODY!r} of the scene must be a mocap body")
        self.jaw_geoms = {model.geom(name).id for name in jaw_geoms}

    def apply(self, data: mujoco.MjData, layout: Layout) -> None:
        """Put the block (at rest on the table) and the circle where ``layout`` says."""
        x, y = layout.block_xy
        half = layout.block_yaw / 2
        data.qpos[self.qpos : self.qpos + 7] = [x, y, BLOCK_HALF, np.cos(half), 0.0, 0.0, np.sin(half)]
        data.qvel[self.qvel : self.qvel + 6] = 0.0
        data.mocap_pos[self.mocap, :2] = layout.target_xy

    def state(self, data: mujoco.MjData) -> TaskState:
        """Block pose, circle centre and the success predicate, from ``data`` after mj_forward or mj_step."""
        pos = data.xpos[self.block_body].copy()
        target = data.mocap_pos[self.mocap, :2].copy()
        inside = bool(np.linalg.norm(pos[:2] - target) <= CIRCLE_RADIUS)
        speed = float(np.linalg.norm(data.qvel[self.qvel : self.qvel + 3]))
        resting = bool(pos[2] <= BLOCK_HALF + REST_HEIGHT and speed <= REST_SPEED)
        held = False
        for i in range(data.ncon):
            pair = {int(data.contact[i].geom1), int(data.contact[i].geom2)}
            if self.block_geom in pair and pair & self.jaw_geoms:
                held = True
                break
        return TaskState(
            pos, data.xquat[self.block_body].copy(), target, inside, resting, held, inside and resting and not held
        )
