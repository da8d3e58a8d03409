"""LIBERO HDF5 -> LeRobot: no-ops and failed demos removed, 8-d state, 180° flip, task text, per-demo errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from rynnvla_model.action_tokenizer import NormStats
from rynnvla_model.data.lerobot_source import LeRobotSource
from rynnvla_model.data.libero import LiberoConfig, LiberoConverter, is_noop, keep_mask
from rynnvla_ros.dataset.cli import main as cli_main

H, W = 32, 40


def _images(n: int, offset: int) -> np.ndarray:
    """Frames with a gradient (so a flip is visible) and the step number in the blue channel."""
    y, x = np.mgrid[0:H, 0:W]
    frames = np.zeros((n, H, W, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0], frames[t, ..., 1], frames[t, ..., 2] = y * 7, x * 6, offset + t * 10
    return frames


def _demo(group: h5py.Group, actions: np.ndarray, done: bool | None, success_attr: bool | None = None) -> None:
    n = len(actions)
    group.create_dataset("actions", data=actions)
    if done is not None:
        flags = np.zeros(n, np.uint8)
        flags[-1] = int(done)
        group.create_dataset("dones", data=flags)
        group.create_dataset("rewards", data=flags)
    if success_attr is not None:
        group.attrs["success"] = success_attr
    obs = group.create_group("obs")
    ee = np.stack(
        [np.arange(n) * 0.01, np.full(n, 0.2), np.full(n, 1.0), np.full(n, 3.1), np.zeros(n), -np.arange(n) * 0.1], 1
    )
    obs.create_dataset("ee_pos", data=ee[:, :3])
    obs.create_dataset("ee_ori", data=ee[:, 3:])
    obs.create_dataset("ee_states", data=ee)
    obs.create_dataset("gripper_states", data=np.stack([np.arange(n) * 0.001, -np.arange(n) * 0.001], 1))
    obs.create_dataset("joint_states", data=np.zeros((n, 7)))
    obs.create_dataset("agentview_rgb", data=_images(n, 0))
    obs.create_dataset("eye_in_hand_rgb", data=_images(n, 5))


MOVE = [0.1, 0.0, -0.2, 0.0, 0.05, 0.0]
STILL = [0.0, 0.0, 0.0, 0.0, 0.0, 5e-5]
ACTIONS_0 = np.array(
    [
        [*STILL, 1.0],  # no-op (first step: no motion is enough)
        [*STILL, -1.0],  # no-op: nothing kept yet, so a gripper change from a dropped step does not count
        [*MOVE, -1.0],
        [*STILL, -1.0],  # no-op: same gripper as the last kept action
        [*STILL, 1.0],  # kept: the gripper closes
        [*MOVE, 1.0],
        [*STILL, 1.0],  # no-op
        [*MOVE, 1.0],
    ],
    dtype=np.float32,
)
KEPT_0 = [2, 4, 5, 7]


def _libero_file(path: Path, problem: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        if problem:
            data.attrs["problem_info"] = json.dumps(
                {"problem_name": "x", "language_instruction": "put the bowl on the plate"}
            )
        _demo(data.create_group("demo_0"), ACTIONS_0, done=True)
        _demo(data.create_group("demo_1"), np.tile(np.array([*MOVE, 1.0], np.float32), (5, 1)), done=False)
        _demo(
            data.create_group("demo_2"),
            np.tile(np.array([*MOVE, -1.0], np.float32), (3, 1)),
            done=None,
            success_attr=True,
        )
        _demo(data.create_group("demo_10"), np.tile(np.array([*STILL, -1.0], np.float32), (3, 1)), done=True)
    return path


def test_noop_rule() -> None:
    assert keep_mask(ACTIONS_0).tolist() == [i in KEPT_0 for i in range(len(ACTIONS_0))]
    assert is_noop(np.array([*STILL, 1.0]), None) and not is_noop(np.array([*STILL, 1.0]), np.array([*MOVE, -1.0]))
    assert not is_noop(np.array([*MOVE, -1.0]), np.array([*MOVE, -1.0]))


def test_libero_conversion(tmp_path: Path) -> None:
    first = _libero_file(tmp_path / "in" / "pick_demo.hdf5")
    second = _libero_file(tmp_path / "in" / "KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5", problem=False)
    broken = tmp_path / "in" / "broken.hdf5"
    broken.write_bytes(b"not hdf5")
    out = tmp_path / "ds"
    report = LiberoConverter(LiberoConfig(use_videos=False), out).convert([tmp_path / "in"])

    # per file: demo_0 (4 kept of 8), demo_2 (3), demo_1 failed, demo_10 all no-ops (error); the broken file errors
    assert report.written_episodes == 4 and report.written_frames == 2 * (4 + 3)
    assert sorted(e.split(":")[0] for e in report.errors) == sorted(
        [str(broken), f"{first} [demo_10]", f"{second} [demo_10]"]
    )
    failed = [e for e in report.episodes if e.label == "demo_1"]
    assert all(e.dataset_episode is None and e.dropped == {"failed_demo": 5} for e in failed)
    source = LeRobotSource(out)
    tasks = [source.task_of(e) for e in range(4)]
    assert tasks.count("put the bowl on the plate") == 2 and tasks.count("turn on the stove") == 2

    start, stop = source.episode_range(0)
    assert stop - start == 4
    states = source.states()[start:stop]
    assert states.shape == (4, 8)
    np.testing.assert_allclose(states[:, 0], np.array(KEPT_0) * 0.01, rtol=1e-6)
    np.testing.assert_allclose(states[:, 5], -np.array(KEPT_0) * 0.1, rtol=1e-6)
    np.testing.assert_allclose(
        states[:, 6:], np.stack([np.array(KEPT_0) * 0.001, -np.array(KEPT_0) * 0.001], 1), rtol=1e-5
    )
    np.testing.assert_array_equal(source.actions()[start:stop], ACTIONS_0[KEPT_0])

    frames = list(source.episode_frames(0))
    raw = _images(8, 0)
    for frame, step in zip(frames, KEPT_0, strict=True):
        np.testing.assert_array_equal(frame.front, raw[step][::-1, ::-1])  # rotated 180°
        assert int(frame.wrist[0, 0, 2]) == 5 + step * 10
    assert frames[0].front[0, 0, 0] == (H - 1) * 7 and frames[0].front[0, 0, 1] == (W - 1) * 6

    stats = NormStats.load(out)
    assert stats["state"].dim == 8 and stats["action"].dim == 7
    np.testing.assert_allclose(stats["action"].max, source.actions().max(axis=0))


def test_libero_cli_no_flip_resize_and_videos(tmp_path: Path) -> None:
    path = _libero_file(tmp_path / "one_demo.hdf5")
    out = tmp_path / "ds"
    code = cli_main(["libero", str(path), "-o", str(out), "--no-flip", "--image-size", "32x48", "--task", "stack"])
    assert code == 1  # demo_10 is an empty episode
    source = LeRobotSource(out)
    assert source.num_episodes == 2 and source.task_of(0) == "stack"
    assert source.features["observation.images.front"]["shape"] == (32, 48, 3)
    frame = next(source.episode_frames(0))
    assert frame.front.shape == (32, 48, 3)
    assert frame.front[0, 0, 0] < 20 < frame.front[-1, 0, 0]  # not flipped: red grows downwards
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["video_check"] == [] and report["totals"]["frames_written"] == 7


@pytest.mark.parametrize("bad", ["nothing", "no_gripper"])
def test_libero_missing_keys_name_the_demo(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "bad_demo.hdf5"
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        _demo(data.create_group("demo_0"), np.tile(np.array([*MOVE, 1.0], np.float32), (3, 1)), done=True)
        _demo(data.create_group("demo_1"), np.tile(np.array([*MOVE, 1.0], np.float32), (3, 1)), done=True)
        if bad == "nothing":
            del data["demo_1/obs/agentview_rgb"]
        else:
            del data["demo_1/obs/gripper_states"]
    report = LiberoConverter(LiberoConfig(use_videos=False), tmp_path / "ds").convert([path])
    assert report.written_episodes == 1
    (error,) = report.errors
    assert error.startswith(f"{path} [demo_1]: obs has no ")
