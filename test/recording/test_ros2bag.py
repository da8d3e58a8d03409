"""The ``ros2 bag record`` backend: its command line, its errors without ROS tools, bag summaries; and, on a machine
with a full ROS 2 install, a real episode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cdr import STATE, T0, state_cdr

from rynnvla_ros import topics
from rynnvla_ros.recording.bag_writer import BagWriter, RecordingError, TopicSpec
from rynnvla_ros.recording.episode_recorder import RecorderConfig
from rynnvla_ros.recording.ros2bag import Ros2BagEpisodes, record_command, ros2bag_unavailable, summarize_bag


def test_the_command_line_names_output_storage_topics_and_task(tmp_path: Path) -> None:
    cmd = record_command(tmp_path / "ep", ["/a", "/b"], "mcap", {"rynnvla.task": "pick it up"})
    assert cmd == [
        "ros2", "bag", "record", "--output", str(tmp_path / "ep"), "--storage", "mcap", "--disable-keyboard-controls",
        "--topics", "/a", "/b", "--custom-data", "rynnvla.task=pick it up",
    ]  # fmt: skip


def test_without_ros2_it_says_why_and_starts_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ros2 here
    assert "the ros2 command is not on PATH" in ros2bag_unavailable()
    episodes = Ros2BagEpisodes(RecorderConfig(tmp_path / "bags"), list(topics.RECORDED_TOPICS))
    with pytest.raises(RecordingError, match=r"cannot start `ros2 bag record`.*No such file"):
        episodes.start("task", ready=lambda: True)
    assert not episodes.recording
    with pytest.raises(RecordingError, match="no episode is recording"):
        episodes.stop()
    with pytest.raises(RecordingError, match="no task text"):
        episodes.start(" ", ready=lambda: True)


def test_summaries_come_from_the_bag_metadata(tmp_path: Path) -> None:
    writer = BagWriter(tmp_path / "bag").open_and_start()
    writer.add_topic(TopicSpec("/js", STATE))
    for i in range(5):
        writer.write("/js", T0 + i, state_cdr(i))
    writer.close()
    summary = summarize_bag(tmp_path / "bag")
    assert summary.readable and summary.written == 5 and summary.counters["/js"].bytes > 0
    missing = summarize_bag(tmp_path / "nothing")
    assert not missing.readable and "metadata.yaml missing" in missing.error


@pytest.mark.ros
@pytest.mark.skipif(shutil.which("ros2") is None, reason="needs the ros2 CLI of a full ROS 2 install")
def test_a_real_ros2_bag_episode(tmp_path: Path) -> None:
    assert ros2bag_unavailable() is None
    episodes = Ros2BagEpisodes(RecorderConfig(tmp_path / "bags"), [topics.EPISODE, topics.TASK])
    info = episodes.start("real", ready=lambda: episodes.alive)
    result = episodes.stop()
    assert result.kept and result.summary.readable, result.message()
    assert (info.path / "metadata.yaml").is_file()
    info = episodes.start("gone", ready=lambda: episodes.alive)
    assert not episodes.discard().kept and not info.path.exists()
