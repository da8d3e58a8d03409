"""EpisodeRecorder: one bag per episode with boundary and task messages that rynnvla-convert reads; discarded
episodes vanish; misuse and unwritable places give clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from cdr import IMAGE, NS, STATE, STORE, STRING, image_cdr, state_cdr
from rosbags.rosbag2 import Reader

from rynnvla_model.data.lerobot_source import LeRobotSource
from rynnvla_ros import topics
from rynnvla_ros.dataset.bag_index import BagConfig
from rynnvla_ros.dataset.bag_to_lerobot import BagConverter
from rynnvla_ros.recording.bag_writer import RecordingError, TopicSpec
from rynnvla_ros.recording.episode_recorder import EpisodeRecorder, RecorderConfig

MS = 1_000_000


class Clock:
    """Wall time the recorder sees, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000 * NS

    def __call__(self) -> int:
        return self.now


def make_recorder(tmp_path: Path, clock: Clock, **config) -> EpisodeRecorder:
    rec = EpisodeRecorder(RecorderConfig(tmp_path / "bags", **config), clock=clock)
    rec.set_topic(TopicSpec(topics.FRONT_IMAGE, IMAGE))
    rec.set_topic(TopicSpec(topics.WRIST_IMAGE, IMAGE))
    rec.set_topic(TopicSpec(topics.JOINT_STATES, STATE))
    rec.set_topic(TopicSpec(topics.LEADER_JOINT_STATES, STATE))
    return rec


def feed(rec: EpisodeRecorder, clock: Clock, seconds: float, first: int = 0) -> int:
    """Front and wrist images at 30 Hz, joint states at 100 Hz, leader arm at 50 Hz, received at the clock's time;
    returns the number of frames."""
    names = ["shoulder_pan", "gripper"]
    start = clock.now
    frames = 0
    for k in range(int(seconds * 100)):
        t = start + k * 10 * MS
        clock.now = t
        rec.offer(topics.JOINT_STATES, t, state_cdr(first + k, stamp_ns=t, names=names))
        if k % 2 == 0:
            rec.offer(topics.LEADER_JOINT_STATES, t, state_cdr(first + k, stamp_ns=t, names=names))
        if k % 10 in (0, 3, 7):  # 30 Hz
            rec.offer(topics.WRIST_IMAGE, t, image_cdr(first + frames + 100, stamp_ns=t))
            rec.offer(topics.FRONT_IMAGE, t + 1, image_cdr(first + frames, stamp_ns=t))
            frames += 1
    clock.now = start + int(seconds * NS)
    return frames


def bag_messages(path: Path) -> list[tuple[str, int, bytes]]:
    with Reader(path) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


def test_an_episode_is_a_bag_with_its_boundaries_and_task_and_converts(tmp_path: Path) -> None:
    clock = Clock()
    rec = make_recorder(tmp_path, clock)
    assert rec.offer(topics.JOINT_STATES, clock.now, state_cdr(0)) is False  # nothing records before start
    info = rec.start("  pick the red cube  ")
    assert info.task == "pick the red cube" and info.path.parent == tmp_path / "bags" and rec.recording
    assert info.path.name.startswith("episode_") and info.path.name.endswith("_000")
    assert rec.offer(topics.JOINT_STATES, info.start_ns - 1, state_cdr(0)) is False  # received before the start
    frames = feed(rec, clock, 2.0)
    result = rec.stop()
    assert not rec.recording and result.kept and result.summary.readable and result.summary.dropped == 0
    assert result.summary.counters[topics.FRONT_IMAGE].written == frames == 60
    assert result.ignored_before_start == 1
    assert "saved to" in result.message() and "pick the red cube" in result.message()

    msgs = bag_messages(info.path)
    strings = [(t, STORE.deserialize_cdr(raw, STRING).data) for topic, t, raw in msgs if topic == topics.EPISODE]
    assert strings == [(info.start_ns, "start:pick the red cube"), (result.end_ns, "stop")]
    assert [STORE.deserialize_cdr(raw, STRING).data for topic, _, raw in msgs if topic == topics.TASK] == [
        "pick the red cube"
    ]
    assert msgs[0][1] == info.start_ns and STORE.deserialize_cdr(msgs[-1][2], STRING).data == "stop"  # first, last
    states = [STORE.deserialize_cdr(raw, STATE) for topic, _, raw in msgs if topic == topics.JOINT_STATES]
    assert [int(s.header.frame_id) for s in states] == list(range(200))  # all, in order
    meta = yaml.safe_load((info.path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["custom_data"]["rynnvla.task"] == "pick the red cube"

    # rynnvla-convert: the task comes from the episode message
    config = BagConfig(episode_topic=topics.EPISODE, use_videos=False)
    report = BagConverter(config, tmp_path / "ds").convert([tmp_path / "bags"])
    assert report.ok, report.summary()
    assert [e.task for e in report.episodes] == ["pick the red cube"]
    assert report.written_frames == frames  # every frame has a fresh state and wrist image
    source = LeRobotSource(tmp_path / "ds")
    assert len(source) == frames
    # and equally from the task topic, one episode per bag
    config = BagConfig(task_topic=topics.TASK, use_videos=False)
    report = BagConverter(config, tmp_path / "ds2").convert([info.path])
    assert report.ok and [e.task for e in report.episodes] == ["pick the red cube"]


def test_discarded_episodes_are_deleted_and_the_others_convert(tmp_path: Path) -> None:
    clock = Clock()
    rec = make_recorder(tmp_path, clock)
    kept = []
    for i, keep in enumerate((True, False, True)):
        info = rec.start(f"task {i}")
        feed(rec, clock, 0.5, first=1000 * i)
        result = rec.stop() if keep else rec.discard()
        assert result.kept == keep and info.path.exists() == keep
        if keep:
            kept.append(info.path)
        else:
            assert "discarded" in result.message() and "deleted" in result.message()
        clock.now += NS
    assert sorted(p for p in (tmp_path / "bags").iterdir()) == kept
    assert [p.name[-3:] for p in kept] == ["000", "002"]
    config = BagConfig(episode_topic=topics.EPISODE, use_videos=False)
    report = BagConverter(config, tmp_path / "ds").convert([tmp_path / "bags"])
    assert report.ok, report.summary()
    assert [e.task for e in report.episodes] == ["task 0", "task 2"]


def test_misuse_is_refused_with_a_reason_and_changes_nothing(tmp_path: Path) -> None:
    clock = Clock()
    rec = make_recorder(tmp_path, clock)
    with pytest.raises(RecordingError, match="no episode is recording"):
        rec.stop()
    with pytest.raises(RecordingError, match="nothing to discard"):
        rec.discard()
    with pytest.raises(RecordingError, match="no task text"):
        rec.start("   ")
    assert rec.close() is None
    info = rec.start("first")
    with pytest.raises(RecordingError, match=r"episode 0 is already recording to .*episode_.*_000; stop or discard"):
        rec.start("second")
    assert rec.current is info  # still recording the first one
    with pytest.raises(RecordingError, match="written by the recorder itself"):
        rec.set_topic(TopicSpec(topics.EPISODE, STRING))
    with pytest.raises(RecordingError, match="no message definition for my_pkg/msg/Thing"):
        rec.set_topic(TopicSpec("/thing", "my_pkg/msg/Thing"))
    rec.set_topic(TopicSpec(topics.JOINT_COMMAND, STATE))  # a topic discovered while recording
    assert rec.offer(topics.JOINT_COMMAND, clock.now + 1, state_cdr(5))
    assert rec.offer("/not/recorded", clock.now + 1, b"\x00") is False
    clock.now += NS
    result = rec.close()  # shutdown stops the episode: the bag is kept and readable
    assert result is not None and result.kept and result.summary.readable
    assert [t for t, _, _ in bag_messages(info.path)].count(topics.JOINT_COMMAND) == 1


def test_unwritable_output_dirs_and_low_disk_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    rec = EpisodeRecorder(RecorderConfig(tmp_path / "file" / "bags"))
    with pytest.raises(RecordingError, match=r"cannot create output_dir .*file/bags: a part of the path is a file"):
        rec.start("task")
    assert not rec.recording and rec.episodes == 0

    low = EpisodeRecorder(RecorderConfig(tmp_path / "bags", min_free_mb=100), free_space=lambda _p: 20 * 2**20)
    with pytest.raises(RecordingError, match="only 20 MB free, below the 100 MB kept free"):
        low.start("task")
    assert not low.recording and not any((tmp_path / "bags").iterdir())
    with pytest.raises(ValueError, match="max_queue"):
        RecorderConfig(tmp_path, max_queue=0)


def test_a_full_queue_drops_and_counts_but_keeps_the_closing_marker(tmp_path: Path) -> None:
    clock = Clock()
    rec = make_recorder(tmp_path, clock, max_queue=1, max_queue_mb=0.001)
    info = rec.start("burst")
    big = image_cdr(1, size=64)  # 12 kB: larger than the queue's 1 kB
    accepted = sum(rec.offer(topics.FRONT_IMAGE, clock.now + i, big) for i in range(50))
    clock.now += NS
    result = rec.stop()
    counters = result.summary.counters[topics.FRONT_IMAGE]
    assert accepted == 0 and counters.dropped == 50
    assert "50 messages dropped (/camera/front/image_raw 50)" in result.message()
    strings = [STORE.deserialize_cdr(raw, STRING).data for t, _, raw in bag_messages(info.path) if t == topics.EPISODE]
    assert strings == ["start:burst", "stop"]
    assert np.all([c.lost == 0 for c in result.summary.counters.values()])
