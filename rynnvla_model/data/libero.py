"""LIBERO demonstrations (the official HDF5 files) -> a LeRobot v3 dataset in RynnVLA-002's conventions.

File layout (LIBERO ``scripts/create_dataset.py``): ``data`` has the attributes ``problem_info`` (JSON with
``language_instruction``) and ``bddl_file_name``; each ``data/demo_N`` holds ``actions`` (T, 7), ``dones``,
``rewards`` and ``obs/{agentview_rgb, eye_in_hand_rgb, ee_pos, ee_ori, ee_states, gripper_states, joint_states}``,
where ``ee_ori`` is already axis-angle (``quat2axisangle`` of the end-effector quaternion).

Per demo, as RynnVLA-002's training data (OpenVLA's ``regenerate_libero_dataset.py`` rules):

- **failed demos are dropped**: the ``success`` attribute of the demo when present, else its final ``dones`` or
  ``rewards`` entry must be non-zero (files without any of them count as successful, noted in the report);
- **no-op steps are dropped**: ``||a[:6]|| < 1e-4`` and the gripper command equal to the previous *kept* action's
  (the first step only needs the first condition). OpenVLA replays the kept actions in the simulator and records
  new observations; this converter has no simulator and keeps the recorded observation of each kept step;
- **state** (8): ``ee_pos`` (3) + ``ee_ori`` axis-angle (3) + ``gripper_states`` (2); **action** (7) as recorded;
- **images**: ``agentview_rgb`` -> ``observation.images.front``, ``eye_in_hand_rgb`` -> ``observation.images.wrist``,
  rotated 180° (both axes flipped, as the official evaluation and training PNGs) unless ``flip=False``, optionally
  resized.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rynnvla_model.data.lerobot_io import (
    DatasetExistsError,
    close_conversion,
    create_dataset,
    image_feature,
    save_episode,
    vector_feature,
)
from rynnvla_model.data.report import ConversionReport, EpisodeReport
from rynnvla_model.image_tokenizer import resize

STATE_NAMES = [
    "eef_x",
    "eef_y",
    "eef_z",
    "eef_axis_angle_x",
    "eef_axis_angle_y",
    "eef_axis_angle_z",
    "gripper_left",
    "gripper_right",
]
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
FRONT, WRIST = "observation.images.front", "observation.images.wrist"


class DemoError(ValueError):
    """A demo (or file) that cannot be converted; the message says why."""


@dataclass(frozen=True)
class LiberoConfig:
    """Conversion settings (defaults follow RynnVLA-002's LIBERO data)."""

    flip: bool = True
    image_size: tuple[int, int] | None = None
    noop_threshold: float = 1e-4
    keep_failed: bool = False
    task: str | None = None
    """Task text for every file instead of the file's ``language_instruction``."""
    fps: int = 20
    """LIBERO's control frequency."""
    front_obs: str = "agentview_rgb"
    wrist_obs: str = "eye_in_hand_rgb"
    use_videos: bool = True
    vcodec: str | None = None
    repo_id: str | None = None


def rotate_180(image: np.ndarray) -> np.ndarray:
    """The image rotated by 180 degrees (both axes flipped), contiguous: LIBERO's convention for the model."""
    return np.ascontiguousarray(np.asarray(image)[::-1, ::-1])


def is_noop(action: np.ndarray, previous: np.ndarray | None, threshold: float = 1e-4) -> bool:
    """OpenVLA's rule: no arm motion, and (after the first step) the same gripper command as ``previous``."""
    still = float(np.linalg.norm(np.asarray(action[:-1], dtype=np.float64))) < threshold
    return still if previous is None else still and action[-1] == previous[-1]


def keep_mask(actions: np.ndarray, threshold: float = 1e-4) -> np.ndarray:
    """Steps that are not no-ops, comparing each with the last kept action."""
    keep = np.zeros(len(actions), dtype=bool)
    previous = None
    for i, action in enumerate(actions):
        if not is_noop(action, previous, threshold):
            keep[i] = True
            previous = action
    return keep


def demo_success(demo: Any) -> bool | None:
    """The demo's success flag, else whether its final done/reward is set; None when the file says nothing."""
    if "success" in demo.attrs:
        return bool(np.asarray(demo.attrs["success"]).item())
    last = [float(np.asarray(demo[k][-1])) for k in ("dones", "rewards") if k in demo and len(demo[k])]
    return any(v > 0 for v in last) if last else None


def task_text(handle: Any, path: Path) -> str:
    """``language_instruction`` of the file's problem info, else the instruction spelled by the file name."""
    info = handle["data"].attrs.get("problem_info")
    if info is not None:
        try:
            text = json.loads(info).get("language_instruction", "")
        except (TypeError, ValueError):
            text = ""
        if isinstance(text, list):
            text = " ".join(text)
        if str(text).strip():
            return str(text).strip()
    stem = re.sub(r"_demo$", "", path.stem)
    stem = re.sub(r"^([A-Z0-9]+_)+", "", stem)  # LIBERO-90 scene prefixes such as KITCHEN_SCENE3_
    return stem.replace("_", " ").strip()


def demo_state(obs: Any) -> np.ndarray:
    """(T, 8) state: eef position, axis-angle orientation, two gripper joint positions."""
    if "ee_pos" in obs and "ee_ori" in obs:
        pos, ori = np.asarray(obs["ee_pos"]), np.asarray(obs["ee_ori"])
    elif "ee_states" in obs:
        ee = np.asarray(obs["ee_states"])
        pos, ori = ee[:, :3], ee[:, 3:6]
    else:
        raise DemoError(f"obs has neither ee_pos/ee_ori nor ee_states (keys: {sorted(obs)})")
    if "gripper_states" not in obs:
        raise DemoError(f"obs has no gripper_states (keys: {sorted(obs)})")
    grip = np.asarray(obs["gripper_states"])
    if pos.shape[1:] != (3,) or ori.shape[1:] != (3,) or grip.shape[1:] != (2,):
        raise DemoError(f"state parts have shapes {pos.shape}, {ori.shape}, {grip.shape}; expected (T,3),(T,3),(T,2)")
    return np.concatenate([pos, ori, grip], axis=1).astype(np.float32)


def _demo_keys(handle: Any) -> list[str]:
    names = [k for k in handle["data"] if k.startswith("demo_")]
    return sorted(names, key=lambda k: int(k.split("_")[1]) if k.split("_")[1].isdigit() else k)


class LiberoConverter:
    """Converts LIBERO HDF5 files into one LeRobot dataset; failures are reported per file/demo."""

    def __init__(self, config: LiberoConfig, output: Path, overwrite: bool = False, compute_stats: bool = True):
        self.config, self.output, self.overwrite, self.compute_stats = config, Path(output), overwrite, compute_stats
        self.dataset = None
        self.features: dict[str, dict] | None = None
        self.report = ConversionReport(output=str(self.output), kind="libero", settings=asdict(config))

    def convert(self, inputs: list[Path]) -> ConversionReport:
        """Convert every demo of every file, then finalize, check videos and write statistics."""
        start = time.perf_counter()
        if self.output.exists() and not self.overwrite:
            raise DatasetExistsError(f"{self.output} exists; choose a new output directory or pass --overwrite")
        for path in find_hdf5(inputs):
            try:
                self._convert_file(path)
            except (OSError, KeyError, DemoError) as exc:
                self.report.error(path, f"cannot read LIBERO file: {type(exc).__name__}: {exc}")
        close_conversion(
            self.dataset,
            self.output,
            self.config.repo_id,
            self.config.use_videos,
            self.compute_stats,
            self.report,
            start,
        )
        return self.report

    def _convert_file(self, path: Path) -> None:
        import h5py

        with h5py.File(path, "r") as handle:
            if "data" not in handle:
                raise DemoError("no 'data' group")
            task = self.config.task or task_text(handle, path)
            demos = _demo_keys(handle)
            self.report.sources[str(path)] = {"task": task, "demos": len(demos)}
            if not demos:
                raise DemoError("no demo_N groups under 'data'")
            for name in demos:
                rep = EpisodeReport(source=str(path), label=name, task=task)
                self.report.episodes.append(rep)
                try:
                    self._convert_demo(handle["data"][name], task, rep)
                except (DemoError, KeyError, ValueError) as exc:
                    if self.dataset is not None and self.dataset.has_pending_frames():
                        self.dataset.clear_episode_buffer()
                    rep.error = str(exc)
                    self.report.error(f"{path} [{name}]", rep.error)

    def _convert_demo(self, demo: Any, task: str, rep: EpisodeReport) -> None:
        cfg = self.config
        actions = np.asarray(demo["actions"], dtype=np.float32)
        rep.candidate_frames = len(actions)
        success = demo_success(demo)
        if success is None:
            rep.notes.append("no success flag, dones or rewards: kept as successful")
        elif not success and not cfg.keep_failed:
            rep.dropped["failed_demo"] = len(actions)
            rep.notes.append("failed demo (success flag / final done and reward unset): not converted")
            return
        if actions.ndim != 2 or actions.shape[1] != 7:
            raise DemoError(f"actions have shape {actions.shape}, expected (T, 7)")
        obs = demo["obs"]
        state = demo_state(obs)
        for key in (cfg.front_obs, cfg.wrist_obs):
            if key not in obs:
                raise DemoError(f"obs has no {key} (keys: {sorted(obs)})")
        lengths = {len(actions), len(state), len(obs[cfg.front_obs]), len(obs[cfg.wrist_obs])}
        if len(lengths) != 1:
            raise DemoError(f"actions, states and images differ in length: {sorted(lengths)}")
        keep = keep_mask(actions, cfg.noop_threshold)
        if (~keep).any():
            rep.dropped["noop"] = int((~keep).sum())
        if not keep.any():
            raise DemoError("empty episode: every step is a no-op")
        front, wrist = np.asarray(obs[cfg.front_obs]), np.asarray(obs[cfg.wrist_obs])
        self._ensure_dataset(self._image(front[0]).shape[:2], self._image(wrist[0]).shape[:2])
        for i in np.flatnonzero(keep):
            frame = {
                FRONT: self._image(front[i]),
                WRIST: self._image(wrist[i]),
                "observation.state": state[i],
                "action": actions[i],
                "task": task,
            }
            self.dataset.add_frame(frame)
        save_episode(self.dataset)
        rep.written_frames = int(keep.sum())
        rep.dataset_episode = self.dataset.meta.total_episodes - 1

    def _image(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise DemoError(f"images must be (H, W, 3) uint8, got {image.shape}")
        if self.config.flip:
            image = rotate_180(image)
        size = self.config.image_size
        return np.ascontiguousarray(image if size is None else resize(image, size))

    def _ensure_dataset(self, front_hw: tuple[int, int], wrist_hw: tuple[int, int]) -> None:
        video = self.config.use_videos
        features = {
            FRONT: image_feature(*front_hw, use_video=video),
            WRIST: image_feature(*wrist_hw, use_video=video),
            "observation.state": vector_feature(STATE_NAMES, {"unit": "m, rad (axis-angle), m"}),
            "action": vector_feature(ACTION_NAMES, {"unit": "normalised delta EEF, gripper -1 open / +1 close"}),
        }
        if self.features is None:
            self.dataset = create_dataset(
                self.output, self.config.fps, features, "panda", self.config.repo_id, self.config.vcodec, self.overwrite
            )
            self.features = features
        elif features != self.features:
            raise DemoError(f"image sizes {front_hw}/{wrist_hw} differ from the first demo's; pass --image-size")


def find_hdf5(inputs: list[Path]) -> list[Path]:
    """HDF5 files named by ``inputs`` (files, or folders searched for ``*.hdf5``)."""
    out: list[Path] = []
    for item in map(Path, inputs):
        out.extend(sorted(item.rglob("*.hdf5")) if item.is_dir() else [item])
    return out
