"""rosbag2 -> LeRobot: rows are exactly the causal samples, lerobot reads the dataset back, failures are contained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bag_builder import (
    FRONT,
    JOINTS,
    LEADER,
    MS,
    STATE,
    T0,
    BagSpec,
    T,
    action_chunk,
    compressed,
    demo_bag,
    expected_rows,
    header,
    image,
    joint_state,
    string,
)

from rynnvla_model.action_tokenizer import NormStats
from rynnvla_model.data.lerobot_source import LeRobotSource
from rynnvla_ros.dataset.bag_index import BagConfig
from rynnvla_ros.dataset.bag_to_lerobot import BagConverter
from rynnvla_ros.dataset.cli import main as cli_main
from rynnvla_ros.dataset.sampling import subsample
from rynnvla_ros.dataset.units import JointUnits


def _convert(bags: list[Path], out: Path, **kwargs) -> object:
    config = BagConfig(task=kwargs.pop("task", "pick the cube"), **kwargs)
    return BagConverter(config, out).convert(bags)


def _parquet(root: Path) -> LeRobotSource:
    return LeRobotSource(root)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_rows_are_the_causal_samples_and_lerobot_reads_them(tmp_path: Path, storage: str) -> None:
    spec, truth = demo_bag()
    bag = spec.write(tmp_path / "bag", storage)
    report = _convert([bag], tmp_path / "ds")
    assert report.ok, report.summary()

    rows = expected_rows(truth)
    late = [r for r in rows if r["time"] == truth.front[truth.late_frame][0]]
    assert late and late[0]["state"] == truth.late_state  # the late message is what had arrived at that frame
    source = _parquet(tmp_path / "ds")
    assert len(source) == len(rows) == report.written_frames
    np.testing.assert_array_equal(source.states(), np.degrees(np.array([r["state"] for r in rows])).astype(np.float32))
    np.testing.assert_array_equal(
        source.actions(), np.degrees(np.array([r["action"] for r in rows])).astype(np.float32)
    )

    (episode,) = report.episodes
    assert episode.candidate_frames == len(truth.front)
    assert episode.dropped["no_action"] >= 1 and episode.dropped["no_image:wrist"] >= 1
    assert episode.dropped["stale_state"] >= 4  # the 0.25 s pause of /joint_states
    assert report.sources[str(bag)]["reference_gaps"] == 1  # front frame 17 is missing
    assert any(gap > 0.05 for _, gap in episode.gaps)
    assert report.video_check == []

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset("local/ds", root=tmp_path / "ds", video_backend="pyav")
    assert len(dataset) == len(rows) and dataset.num_episodes == 1 and dataset.fps == 30
    for i in (0, len(rows) // 2, len(rows) - 1):
        item = dataset[i]
        assert item["task"] == "pick the cube"
        front = item["observation.images.front"].numpy() * 255
        wrist = item["observation.images.wrist"].numpy() * 255
        assert abs(front[0].mean() - rows[i]["front"]) < 4 and abs(front[1].mean() - 100) < 4
        assert abs(wrist[0].mean() - rows[i]["wrist"]) < 4  # bgr8 on the wire, RGB in the dataset
        np.testing.assert_allclose(item["observation.state"].numpy(), np.degrees(rows[i]["state"]), rtol=1e-6)
    state_info = dataset.meta.features["observation.state"]
    assert state_info["names"] == JOINTS and state_info["info"]["units"] == ["deg"] * 3


def test_header_time_sampling_differs_from_receive_time(tmp_path: Path) -> None:
    spec, truth = demo_bag(stale_gap=False)
    bag = spec.write(tmp_path / "bag")
    receive = _convert([bag], tmp_path / "receive", use_videos=False)
    header = _convert([bag], tmp_path / "header", use_videos=False, time_source="header")
    assert receive.ok and header.ok
    for root, use_header in ((tmp_path / "receive", False), (tmp_path / "header", True)):
        rows = expected_rows(truth, use_header=use_header)
        source = _parquet(root)
        want = np.degrees(np.array([r["state"] for r in rows])).astype(np.float32)
        np.testing.assert_array_equal(source.states(), want)
        frames = list(source.episode_frames(0))
        assert [int(f.front[0, 0, 0]) for f in frames] == [r["front"] for r in rows]  # PNG: exact pixels
        assert [int(f.wrist[0, 0, 0]) for f in frames] == [r["wrist"] for r in rows]
    # the late state message is used at its receive time only, so the two datasets differ there
    assert not np.array_equal(_parquet(tmp_path / "receive").states(), _parquet(tmp_path / "header").states())
    delays = receive.sources[str(bag)]["topics"][FRONT]["receive_minus_header_ms"]
    assert delays["median"] == pytest.approx(8.0)


def _short_bag(path: Path, seconds: float = 0.6, state: bool = True, state_offset_s: float = 0.0) -> Path:
    spec, _truth = demo_bag(seconds=seconds, stale_gap=False, late=False)
    spec.messages = [m for m in spec.messages if state or m[0] != STATE]
    if state_offset_s:
        shift = round(state_offset_s * 1e9)
        spec.messages = [(t, ty, r + shift if t == STATE else r, m) for t, ty, r, m in spec.messages]
    return spec.write(path)


def test_failed_bags_are_reported_and_the_others_converted(tmp_path: Path) -> None:
    good = _short_bag(tmp_path / "good")
    corrupt = _short_bag(tmp_path / "corrupt")
    for f in corrupt.glob("*.mcap"):
        f.write_bytes(b"\x89MCAP0\r\n" + b"garbage" * 50)
    missing = _short_bag(tmp_path / "missing_state", state=False)
    empty = _short_bag(tmp_path / "empty", state_offset_s=-30.0)  # every state is 30 s older than the frames
    report = _convert([corrupt, missing, good, empty], tmp_path / "ds")
    assert report.written_episodes == 1 and not report.ok
    errors = "\n".join(report.errors)
    assert f"{corrupt}: cannot" in errors
    assert f"{missing}: missing topics ['{STATE}']" in errors
    assert f"{empty} [bag]: empty episode" in errors and "stale_state" in errors
    assert len(report.errors) == 3
    assert _parquet(tmp_path / "ds").num_episodes == 1
    saved = json.loads((tmp_path / "ds" / "conversion_report.json").read_text())
    assert saved["totals"]["episodes_written"] == 1 and len(saved["errors"]) == 3


def test_episode_topic_splits_bag_and_sets_tasks(tmp_path: Path) -> None:
    spec, truth = demo_bag(stale_gap=False, late=False)
    events = [
        (100, "start:pick red"),
        (700, "stop"),
        (800, "start"),
        (1100, "stop"),
        (1150, "start:scrap"),
        (1250, "discard"),
        (1310, "start:nothing here"),
        (1320, "stop"),
        (1500, "start:last"),
    ]
    for ms, text in events:
        spec.add("/recorder/episode", "std_msgs/msg/String", T0 + ms * MS, string(text))
    spec.add("/recorder/task", "std_msgs/msg/String", T0 + 750 * MS, string("place it"))
    bag = spec.write(tmp_path / "bag")
    report = _convert([bag], tmp_path / "ds", task=None, episode_topic="/recorder/episode", task_topic="/recorder/task")
    source = _parquet(tmp_path / "ds")
    assert source.num_episodes == 3
    assert [source.task_of(e) for e in range(3)] == ["pick red", "place it", "last"]
    rows = expected_rows(truth)
    for ep, (lo, hi) in enumerate([(100, 700), (800, 1100), (1500, 10_000)]):
        want = [r for r in rows if T0 + lo * MS <= r["time"] < T0 + hi * MS]
        start, stop = source.episode_range(ep)
        assert stop - start == len(want)
        np.testing.assert_array_equal(source.states()[start:stop], np.degrees([r["state"] for r in want]).astype("f4"))
    assert report.errors == [f"{bag} [episode 3]: empty episode: none of its 0 reference frames is usable (no frames)"]
    scrap = [e for e in report.episodes if e.task == "scrap"]
    assert scrap[0].dataset_episode is None and scrap[0].dropped["discarded_episode"] > 0


def test_action_chunk_source_units_and_corrupt_messages(tmp_path: Path) -> None:
    spec, truth = demo_bag(seconds=1.0, stale_gap=False, late=False)
    spec.messages = [m for m in spec.messages if m[0] != LEADER]
    chunks = []
    for j in range(10):
        s = T0 + j * 100 * MS
        rows = np.array([[0.2 + 0.01 * j, 0.05, 0.25], [9.0, 9.0, 9.0]])
        chunks.append((s + 5 * MS, s, rows[0].tolist()))
        spec.add("/policy/action_chunk", "rynnvla_ros/msg/ActionChunk", s + 5 * MS, action_chunk(s, JOINTS, rows))
    spec.add(STATE, "sensor_msgs/msg/JointState", T0 + 505 * MS, b"\x00\x01\x00\x00\x07")  # truncated CDR
    bag = spec.write(tmp_path / "bag", "sqlite3")
    units = JointUnits("deg", gripper_joint="gripper", gripper_range=(0.0, 0.5))
    report = _convert([bag], tmp_path / "ds", action_topic="/policy/action_chunk", action_max_age=0.15, units=units)
    assert report.ok, report.summary()
    assert report.sources[str(bag)]["topics"][STATE]["corrupt"] == 1
    truth.action = chunks
    rows = expected_rows(truth, action_age_ns=150 * MS)
    source = _parquet(tmp_path / "ds")
    want = np.array([r["action"] for r in rows], dtype=np.float32).astype(np.float64)  # ActionChunk is float32
    want = np.concatenate([np.degrees(want[:, :2]), want[:, 2:] / 0.5 * 100], axis=1).astype(np.float32)
    np.testing.assert_array_equal(source.actions(), want)
    assert np.allclose(source.states()[:, 2], 60.0)  # gripper 0.3 rad of a 0..0.5 rad range
    assert source.features["action"]["info"]["units"] == ["deg", "deg", "percent"]


def test_cli_exit_codes_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = _short_bag(tmp_path / "bag")
    out = tmp_path / "ds"
    args = ["bags", str(bag), "-o", str(out), "--task", "stack", "--no-videos", "--unit", "rad"]
    assert cli_main(args) == 0
    assert "1 episodes" in capsys.readouterr().out
    assert cli_main(args) == 2  # the output exists
    source = _parquet(out)
    stats = NormStats.load(out)
    np.testing.assert_allclose(stats["state"].min, source.states().min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"].q99, np.quantile(source.actions(), 0.99, axis=0), rtol=1e-6)
    (out / "norm_stats.json").unlink()
    assert cli_main(["stats", str(out)]) == 0
    assert NormStats.load(out) == stats
    two = _two_episode_bag(tmp_path / "two")
    assert cli_main(["bags", str(two), "-o", str(tmp_path / "split"), "--split-episodes", "--no-videos"]) == 0
    assert [LeRobotSource(tmp_path / "split").task_of(e) for e in (0, 1)] == ["first", "second"]
    assert cli_main(["bags", str(tmp_path / "nope"), "-o", str(tmp_path / "x"), "--task", "t"]) == 2
    assert cli_main(["bags", str(bag), "-o", str(tmp_path / "y"), "--reference", "side", "--task", "t"]) == 2


def test_mono_compressed_and_resized_cameras(tmp_path: Path) -> None:
    spec = BagSpec()
    for i in range(20):
        t = T0 + i * 50 * MS
        spec.add(FRONT, "sensor_msgs/msg/Image", t, image(t, 10 * i, height=48, width=64, encoding="mono8"))
        wrist = (
            compressed(t, 5 * i)
            if i != 7
            else T["sensor_msgs/msg/CompressedImage"](
                header=header(t), format="png", data=np.frombuffer(b"not a png", np.uint8)
            )
        )
        spec.add("/camera/wrist/compressed", "sensor_msgs/msg/CompressedImage", t + MS, wrist)
        spec.add(STATE, "sensor_msgs/msg/JointState", t - MS, joint_state(t, JOINTS, [0.1, 0.2, 0.3]))
        spec.add(LEADER, "sensor_msgs/msg/JointState", t - MS, joint_state(t, JOINTS, [0.1, 0.2, 0.4]))
    bag = spec.write(tmp_path / "bag")
    cameras = {"front": FRONT, "wrist": "/camera/wrist/compressed"}
    report = _convert([bag], tmp_path / "ds", cameras=cameras, image_size=(32, 40), use_videos=False)
    assert report.written_frames == 18, report.summary()  # frame 0: no wrist image yet; frame 7: corrupt png
    (episode,) = report.episodes
    assert episode.dropped == {"no_image:wrist": 1, "corrupt_image:wrist": 1}
    source = LeRobotSource(tmp_path / "ds")
    assert source.fps == 20 and source.features["observation.images.front"]["shape"] == (32, 40, 3)
    frame = source[5]  # bag frame 6
    assert frame.front.shape == frame.wrist.shape == (32, 40, 3)
    assert frame.front[3, 3].tolist() == [60, 60, 60]  # mono8 -> grey RGB
    assert frame.wrist[3, 3].tolist() == [25, 30, 0]  # wrist frame 5 (1 ms after the front frame): BGR -> RGB


def _two_episode_bag(path: Path) -> Path:
    spec, _ = demo_bag(seconds=1.2, stale_gap=False, late=False)
    for ms, text in ((100, "start:first"), (500, "stop"), (600, "start:second")):
        spec.add("/recorder/episode", "std_msgs/msg/String", T0 + ms * MS, string(text))
    return spec.write(path)


def test_a_failed_save_loses_only_that_episode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    bag = _two_episode_bag(tmp_path / "bag")
    original, calls = LeRobotDataset.save_episode, []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LeRobotDataset, "save_episode", flaky)
    report = _convert([bag], tmp_path / "ds", task=None, episode_topic="/recorder/episode")
    assert report.errors == [f"{bag} [episode 0]: saving the episode failed: OSError: disk full"]
    source = _parquet(tmp_path / "ds")
    assert source.num_episodes == 1 and source.task_of(0) == "second"
    assert report.video_check == []  # the cancelled episode left nothing in the videos


def test_a_stopped_bag_keeps_the_episodes_already_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rynnvla_ros.dataset import bag_to_lerobot

    bag = _two_episode_bag(tmp_path / "bag")
    other = _two_episode_bag(tmp_path / "other")
    original = bag_to_lerobot._EpisodeWriter._emit

    def failing(self, frame, images):
        if self.bag == bag and self.current == 1 and self.reports[1].written_frames == 3:
            raise RuntimeError("storage chunk unreadable")  # in the middle of the bag's second episode
        return original(self, frame, images)

    monkeypatch.setattr(bag_to_lerobot._EpisodeWriter, "_emit", failing)
    report = _convert([bag, other], tmp_path / "ds", task=None, episode_topic="/recorder/episode")
    assert report.errors == [
        f"{bag} [episode 1]: not written: conversion of the bag stopped (RuntimeError: storage chunk unreadable)"
    ]
    source = _parquet(tmp_path / "ds")
    assert [source.task_of(e) for e in range(source.num_episodes)] == ["first", "first", "second"]
    assert report.video_check == []


def test_a_lower_fps_subsamples_the_reference_frames(tmp_path: Path) -> None:
    spec, truth = demo_bag(stale_gap=False, late=False)
    bag = spec.write(tmp_path / "bag")
    report = _convert([bag], tmp_path / "ds", fps=10)
    assert report.ok, report.summary()
    source = _parquet(tmp_path / "ds")
    rows = {r["time"]: r for r in expected_rows(truth)}
    assert source.fps == 10 and 0 < len(source) <= len(rows) / 3 + 1
    times = np.array(sorted(f[0] for f in truth.front))
    kept = times[subsample(times, 10)]
    expected = [rows[t]["state"] for t in kept if t in rows]
    np.testing.assert_allclose(source.states(), np.degrees(np.array(expected)), rtol=1e-6)


def test_cli_writes_the_robot_io_of_a_joint_dataset(tmp_path: Path) -> None:
    from rynnvla_ros.inference.robot_io import RobotIO

    bag = _short_bag(tmp_path / "bag")
    out = tmp_path / "ds"
    args = ["bags", str(bag), "-o", str(out), "--task", "t", "--no-videos", "--fps", "10"]
    assert cli_main([*args, "--relative-joints", JOINTS[0], JOINTS[1]]) == 0
    io = RobotIO.load(out)
    assert io.names == JOINTS and io.relative_mask.tolist() == [True, True, False]
    assert io.control_period == pytest.approx(0.1) and io.cameras == ("front", "wrist")
    q = np.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(io.to_model_state(q), np.degrees(q))  # the dataset's degrees
