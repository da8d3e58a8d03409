"""Robot I/O mapping: ROS joint states (radians, by name) <-> the model's state and action vectors.

One small JSON file beside a checkpoint, ``robot_io.json``, says how a checkpoint's numbers relate to the robot::

    {
      "format_version": 1,
      "joints": [                       # model dimension i is joints[i], for the state and the action alike
        {"name": "shoulder_pan", "scale": 57.29577951308232, "offset": 0.0, "relative": true},
        ...
        {"name": "gripper", "scale": 57.9, "offset": 10.0, "relative": false}
      ],
      "control_period": 0.03333333333333333,   # s between actions of a chunk and between history frames
      "history": 1,                     # M: frames per camera in the prompt (t, t - period, ...)
      "cameras": ["front", "wrist"],    # views in the prompt: ["front"] or ["front", "wrist"]
      "state": true,                    # whether the prompt holds the joint state
      "action_space": "joint_positions", # optional: joint_positions (default) or eef_delta_gripper
      "action_names": []                # eef_delta_gripper only: the chunk's column names
    }

Units: ``model = scale * radians + offset`` per joint (degrees: scale 180/pi, offset 0; LeRobot's gripper percent:
scale 100/(hi-lo), offset -100*lo/(hi-lo) for the gripper range (lo, hi) in radians). ``relative`` marks action
dimensions that the model predicts as deltas to the joint state at the observation time (the official SO100 option:
joints 0-4 relative, the gripper absolute); the others are absolute. Whatever the model predicts, the nodes publish
absolute joint positions in radians.

With ``action_space`` ``eef_delta_gripper`` (LIBERO: end-effector deltas and a gripper command) the model's actions
are not joint targets: they are published unchanged, with ``action_names`` as the chunk's column names, and
``joints`` then describe only the state (e.g. LIBERO's 8-d state, published by the bridge as a JointState with one
named entry per dimension); no joint may be ``relative``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROBOT_IO_FILE = "robot_io.json"
FORMAT_VERSION = 1
CAMERA_SETS = (("front",), ("front", "wrist"))
JOINT_POSITIONS = "joint_positions"
EEF_DELTA_GRIPPER = "eef_delta_gripper"
ACTION_SPACES = (JOINT_POSITIONS, EEF_DELTA_GRIPPER)


class RobotIOError(ValueError):
    """A joint state, action or mapping file that does not fit; the message says why, ``kind`` names the reason."""

    def __init__(self, message: str, kind: str = "bad_robot_io") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class JointMap:
    """How one model dimension relates to one robot joint."""

    name: str
    scale: float
    """Model units per radian."""
    offset: float = 0.0
    """Model value at 0 rad."""
    relative: bool = False
    """The action is a delta to the joint state at the observation time."""


@dataclass(frozen=True)
class RobotIO:
    """The mapping of one checkpoint (see the module docstring for the file format)."""

    joints: tuple[JointMap, ...]
    control_period: float
    history: int = 1
    cameras: tuple[str, ...] = ("front", "wrist")
    state: bool = True
    action_space: str = JOINT_POSITIONS
    action_names: tuple[str, ...] = ()
    _scale: np.ndarray = field(init=False, repr=False, compare=False)
    _offset: np.ndarray = field(init=False, repr=False, compare=False)
    _relative: np.ndarray = field(init=False, repr=False, compare=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "joints", tuple(self.joints))
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "action_names", tuple(str(n) for n in self.action_names))
        if not self.joints:
            raise RobotIOError("a robot I/O mapping needs at least one joint")
        names = [j.name for j in self.joints]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise RobotIOError(f"joint(s) named twice: {', '.join(twice)}")
        for j in self.joints:
            if not (math.isfinite(j.scale) and j.scale != 0 and math.isfinite(j.offset)):
                raise RobotIOError(f"joint {j.name}: scale must be finite and non-zero, offset finite")
        if not (math.isfinite(self.control_period) and self.control_period > 0):
            raise RobotIOError(f"control_period must be > 0 s, got {self.control_period}")
        if not isinstance(self.history, int) or self.history < 1:
            raise RobotIOError(f"history must be an integer >= 1, got {self.history!r}")
        if self.cameras not in CAMERA_SETS:
            raise RobotIOError(f"cameras must be one of {[list(c) for c in CAMERA_SETS]}, got {list(self.cameras)}")
        if self.action_space not in ACTION_SPACES:
            raise RobotIOError(f"action_space must be one of {', '.join(ACTION_SPACES)}, got {self.action_space!r}")
        if self.joint_actions and self.action_names:
            raise RobotIOError("action_names are only for action_space eef_delta_gripper (joint actions use joints)")
        if not self.joint_actions:
            if not self.action_names or len(set(self.action_names)) != len(self.action_names):
                raise RobotIOError(f"action_space {self.action_space} needs distinct action_names")
            if any(j.relative for j in self.joints):
                raise RobotIOError(f"action_space {self.action_space}: no joint can be relative")
        object.__setattr__(self, "_scale", np.array([j.scale for j in self.joints], dtype=np.float64))
        object.__setattr__(self, "_offset", np.array([j.offset for j in self.joints], dtype=np.float64))
        object.__setattr__(self, "_relative", np.array([j.relative for j in self.joints], dtype=bool))
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})

    # ---------------------------------------------------------------- properties
    @property
    def names(self) -> list[str]:
        """Joint names in model order."""
        return [j.name for j in self.joints]

    @property
    def dim(self) -> int:
        """Number of joints: the state's size (and the action's, for joint actions)."""
        return len(self.joints)

    @property
    def joint_actions(self) -> bool:
        """Whether the model's actions are joint targets (else they are published as predicted)."""
        return self.action_space == JOINT_POSITIONS

    @property
    def action_dim(self) -> int:
        """Size of the model's action vector."""
        return self.dim if self.joint_actions else len(self.action_names)

    @property
    def chunk_names(self) -> list[str]:
        """Column names of the published chunk: the joints, or ``action_names``."""
        return self.names if self.joint_actions else list(self.action_names)

    @property
    def use_wrist(self) -> bool:
        return "wrist" in self.cameras

    @property
    def relative_mask(self) -> np.ndarray:
        """Boolean (dim,) mask of the relative action dimensions."""
        return self._relative.copy()

    def check_model(self, action_dim: int, state_dim: int | None) -> None:
        """RobotIOError when the model's action/state sizes do not fit this mapping."""
        if action_dim != self.action_dim:
            what = f"{self.dim} joints" if self.joint_actions else f"{self.action_dim} {self.action_space} dims"
            raise RobotIOError(f"the model predicts {action_dim}-d actions but the robot I/O maps {what}")
        if self.state and state_dim is None:
            raise RobotIOError("the robot I/O says the prompt holds the state, but the checkpoint has no state stats")
        if self.state and state_dim != self.dim:
            raise RobotIOError(f"the model expects a {state_dim}-d state but the robot I/O maps {self.dim} joints")
        if not self.state and state_dim is not None:
            raise RobotIOError(f"the model expects a {state_dim}-d state but the robot I/O says state: false")

    # ---------------------------------------------------------------- conversions
    def joint_vector(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """Positions (rad) of this mapping's joints, in model order, from a JointState's names and positions.

        The message may list the joints in any order and list other joints (ignored). A missing, repeated or
        non-finite joint raises RobotIOError.
        """
        if len(positions) < len(names):
            raise RobotIOError(f"joint state has {len(names)} names but {len(positions)} positions", "bad_joint_state")
        out = np.full(self.dim, np.nan)
        seen = np.zeros(self.dim, dtype=bool)
        for name, value in zip(names, positions, strict=False):
            i = self._index.get(name)
            if i is None:
                continue
            if seen[i]:
                raise RobotIOError(f"joint state names {name} twice", "bad_joint_state")
            seen[i] = True
            out[i] = value
        if not seen.all():
            missing = [n for n, s in zip(self.names, seen, strict=True) if not s]
            raise RobotIOError(f"joint state lacks joint(s) {', '.join(missing)}", "missing_joint")
        bad = [n for n, v in zip(self.names, out, strict=True) if not math.isfinite(v)]
        if bad:
            raise RobotIOError(f"joint state has non-finite position(s) for {', '.join(bad)}", "non_finite_joint")
        return out

    def to_model_state(self, q: np.ndarray) -> np.ndarray:
        """Joint positions (rad, model order) -> the model's state vector."""
        return self._scale * np.asarray(q, dtype=np.float64) + self._offset

    def to_chunk_rows(self, actions: np.ndarray, q_state: np.ndarray) -> np.ndarray:
        """(K, action_dim) model actions -> the published chunk's rows: absolute joint positions (rad) for joint
        actions (:meth:`to_joint_positions`), else the actions unchanged (float64 copy)."""
        if self.joint_actions:
            return self.to_joint_positions(actions, q_state)
        actions = np.array(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != self.action_dim:
            raise RobotIOError(f"actions must have shape (K, {self.action_dim}), got {actions.shape}")
        return actions

    def to_joint_positions(self, actions: np.ndarray, q_state: np.ndarray) -> np.ndarray:
        """(K, dim) model actions -> (K, dim) absolute joint positions (rad), relative dims added to ``q_state``."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != self.dim:
            raise RobotIOError(f"actions must have shape (K, {self.dim}), got {actions.shape}")
        absolute = actions + np.where(self._relative, self.to_model_state(q_state), 0.0)
        return (absolute - self._offset) / self._scale

    def to_model_action(self, target: np.ndarray, q_state: np.ndarray) -> np.ndarray:
        """Absolute joint positions (rad, (dim,) or (K, dim)) -> the model's action vector(s) (inverse of above).

        For ``eef_delta_gripper`` the chunk's rows are the model's actions: returned unchanged.
        """
        if not self.joint_actions:
            return np.array(target, dtype=np.float64)
        model = self.to_model_state(target)
        return model - np.where(self._relative, self.to_model_state(q_state), 0.0)

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (module docstring); the action keys only when they differ from the default."""
        data = {
            "format_version": FORMAT_VERSION,
            "joints": [
                {"name": j.name, "scale": j.scale, "offset": j.offset, "relative": j.relative} for j in self.joints
            ],
            "control_period": self.control_period,
            "history": self.history,
            "cameras": list(self.cameras),
            "state": self.state,
        }
        if not self.joint_actions:
            data.update(action_space=self.action_space, action_names=list(self.action_names))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "robot I/O") -> RobotIO:
        """Inverse of :meth:`to_dict`; RobotIOError naming ``source`` on anything missing or unknown."""
        if not isinstance(data, Mapping):
            raise RobotIOError(f"{source} must hold a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise RobotIOError(f"{source}: format_version must be {FORMAT_VERSION}, got {version!r}")
        known = {"format_version", "joints", "control_period", "history", "cameras", "state"}
        known |= {"action_space", "action_names"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RobotIOError(f"{source}: unknown key(s) {', '.join(unknown)}")
        try:
            joints = tuple(
                JointMap(str(j["name"]), float(j["scale"]), float(j.get("offset", 0.0)), bool(j.get("relative", False)))
                for j in data["joints"]
            )
            return cls(
                joints=joints,
                control_period=float(data["control_period"]),
                history=int(data.get("history", 1)),
                cameras=tuple(str(c) for c in data.get("cameras", ("front", "wrist"))),
                state=bool(data.get("state", True)),
                action_space=str(data.get("action_space", JOINT_POSITIONS)),
                action_names=tuple(str(n) for n in data.get("action_names", ())),
            )
        except RobotIOError as exc:
            raise RobotIOError(f"{source}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise RobotIOError(f"{source}: invalid mapping ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | Path) -> Path:
        """Write the JSON to ``path`` (a directory gets ``robot_io.json``); returns the file."""
        path = Path(path)
        if path.is_dir():
            path = path / ROBOT_IO_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> RobotIO:
        """Read a file written by :meth:`save` (a directory: its ``robot_io.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / ROBOT_IO_FILE
        if not path.is_file():
            raise RobotIOError(f"robot I/O file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RobotIOError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data, source=str(path))

    # ---------------------------------------------------------------- conventions
    @classmethod
    def lerobot(
        cls,
        names: Sequence[str],
        gripper: str | None,
        gripper_range: tuple[float, float] | None,
        relative: Sequence[str] = (),
        control_period: float = 1 / 30,
        history: int = 1,
        cameras: Sequence[str] = ("front", "wrist"),
        state: bool = True,
        degrees: bool = True,
    ) -> RobotIO:
        """LeRobot units (``use_degrees=True``): degrees for the joints (radians with ``degrees`` false), the gripper
        0-100 % over ``gripper_range``."""
        unknown = sorted(set(relative) - set(names))
        if unknown:
            raise RobotIOError(f"relative joint(s) {', '.join(unknown)} are not among {', '.join(names)}")
        joints = []
        for name in names:
            if name == gripper:
                if gripper_range is None or gripper_range[1] == gripper_range[0]:
                    raise RobotIOError(f"the gripper needs a range of two different positions, got {gripper_range}")
                lo, hi = gripper_range
                scale = 100.0 / (hi - lo)
                joints.append(JointMap(name, scale, -lo * scale, name in relative))
            else:
                joints.append(JointMap(name, 180.0 / math.pi if degrees else 1.0, 0.0, name in relative))
        return cls(tuple(joints), float(control_period), int(history), tuple(cameras), bool(state))


def so100_lerobot(
    control_period: float = 1 / 30, history: int = 1, cameras: Sequence[str] = ("front", "wrist")
) -> RobotIO:
    """The official SO100 option: LeRobot degrees, gripper 0-100 % over its URDF limits, joints 0-4 relative."""
    from rynnvla_ros.control import so100_description as desc

    limits = desc.joint_limits()
    g = desc.JOINT_NAMES.index(desc.GRIPPER)
    arm = [n for n in desc.JOINT_NAMES if n != desc.GRIPPER]
    rng = (float(limits.lower[g]), float(limits.upper[g]))
    return RobotIO.lerobot(desc.JOINT_NAMES, desc.GRIPPER, rng, arm, control_period, history, cameras)
