"""Reading LeRobot datasets written by lerobot itself (as ``lerobot-record`` does), with configurable keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rynnvla_model.data.lerobot_io import finish_dataset, save_episode
from rynnvla_model.data.lerobot_source import LeRobotSource, SourceKeys
from rynnvla_model.data.stats import dataset_stats

TOP, SIDE = "observation.images.top", "observation.images.side"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes (5 and 7 frames) with lerobot's own writer, keys as a different robot would name them."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("rec") / "so101_demo"
    names = [f"m{i}.pos" for i in range(6)]
    features = {
        TOP: {"dtype": "video", "shape": (32, 48, 3), "names": ["height", "width", "channels"]},
        SIDE: {"dtype": "video", "shape": (32, 32, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (6,), "names": names},
        "action": {"dtype": "float32", "shape": (6,), "names": names},
    }
    ds = LeRobotDataset.create("user/so101_demo", fps=15, features=features, root=root, video_backend="pyav")
    for ep, (length, task) in enumerate([(5, "pick"), (7, "place")]):
        for i in range(length):
            k = ep * 10 + i
            ds.add_frame(
                {
                    TOP: np.full((32, 48, 3), 20 * i, np.uint8),
                    SIDE: np.full((32, 32, 3), 200 - 20 * i, np.uint8),
                    "observation.state": np.arange(6, dtype=np.float32) + k,
                    "action": -np.arange(6, dtype=np.float32) - k,
                    "task": task,
                }
            )
        save_episode(ds)
    finish_dataset(ds, root)
    return root


def test_frames_of_a_recorded_dataset(recorded: Path) -> None:
    source = LeRobotSource(recorded, SourceKeys(front=TOP, wrist=SIDE))
    assert (source.num_episodes, len(source), source.fps) == (2, 12, 15)
    assert source.episode_range(1) == (5, 12) and source.task_of(1) == "place"
    frames = list(source.episode_frames(1, block=3))
    assert [f.frame_index for f in frames] == list(range(7)) and {f.episode_index for f in frames} == {1}
    for i, frame in enumerate(frames):
        assert frame.front.shape == (32, 48, 3) and frame.wrist.shape == (32, 32, 3)
        assert abs(float(frame.front.mean()) - 20 * i) < 3 and abs(float(frame.wrist.mean()) - (200 - 20 * i)) < 3
        np.testing.assert_array_equal(frame.state, np.arange(6) + 10 + i)
        assert frame.task == "place" and frame.timestamp == pytest.approx(i / 15)
    single = source[7]
    np.testing.assert_array_equal(single.front, frames[2].front)
    np.testing.assert_array_equal(single.action, frames[2].action)
    stats = dataset_stats(recorded)
    np.testing.assert_array_equal(stats["state"].min, np.arange(6))
    np.testing.assert_array_equal(stats["action"].min, -np.arange(6) - 16)


def test_wrong_keys_and_paths_are_named(recorded: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"observation.images.front.*available"):
        LeRobotSource(recorded)  # default keys: front/wrist
    with pytest.raises(FileNotFoundError, match="not a LeRobot dataset"):
        LeRobotSource(tmp_path)
    source = LeRobotSource(recorded, SourceKeys(front=TOP, wrist=None))
    assert source[0].wrist is None
    with pytest.raises(IndexError):
        source.episode_range(2)
