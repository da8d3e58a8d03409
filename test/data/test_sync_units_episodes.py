"""Building blocks of the bag converter: causal sampling, episode boundaries, units, message values."""

from __future__ import annotations

import numpy as np
import pytest
from bag_builder import T, action_chunk, joint_state

from rynnvla_model.data.lerobot_io import parse_image_size
from rynnvla_ros.dataset import extract
from rynnvla_ros.dataset.episodes import BOOL, INT_TYPES, STRING, parse_command, segments
from rynnvla_ros.dataset.sampling import Stream, estimate_fps, reference_gaps, sample_asof, subsample
from rynnvla_ros.dataset.units import JointUnits


def test_sample_asof_never_uses_a_later_message() -> None:
    stream = Stream.of([100, 200, 300, 300], indices=[7, 8, 9, 10])
    s = sample_asof(stream, np.array([50, 100, 199, 250, 300, 450]), max_age_s=100e-9)
    assert s.index.tolist() == [-1, 7, 7, 8, 10, 10]  # equal times: the later message in bag order wins
    assert s.missing.tolist() == [True, False, False, False, False, False]
    assert s.stale.tolist() == [False, False, False, False, False, True]  # 150 ns > 100 ns
    assert s.ok.tolist() == [False, True, True, True, True, False]
    out_of_order = sample_asof(Stream.of([300, 100, 200]), np.array([250]), 1.0)
    assert out_of_order.index.tolist() == [2]
    empty = sample_asof(Stream.of([]), np.array([1, 2]), 1.0)
    assert empty.missing.all() and (empty.index == -1).all()


def test_gaps_and_fps() -> None:
    t = np.array([0, 33, 67, 100, 167, 200]) * 1_000_000
    assert reference_gaps(t, 30.0) == [(100_000_000, 67_000_000)]
    assert round(estimate_fps(t)) == 30
    with pytest.raises(ValueError):
        estimate_fps(np.array([5]))


def test_string_episode_commands() -> None:
    msgs = ["start:pick it", "stop", "START", "start", "discard", "stop", "hello", "start : place"]
    events = [(i * 10, *parse_command(T[STRING](data=m), STRING)) for i, m in enumerate(msgs)]
    segs, warnings = segments(events, end_ns=1000)
    assert [(s.start_ns, s.end_ns, s.task, s.discarded) for s in segs] == [
        (0, 10, "pick it", False),
        (20, 30, None, False),  # a second start closes the open episode
        (30, 40, None, True),
        (70, 1000, "place", False),  # open at the end of the bag: ends with it
    ]
    assert len(warnings) == 2 and "without an open episode" in warnings[0] and "'hello'" in warnings[1]


def test_bool_and_int_episode_commands() -> None:
    flags = [True, True, False, True]
    events = [(i * 10, *parse_command(T[BOOL](data=f), BOOL)) for i, f in enumerate(flags)]
    segs, _ = segments(events, end_ns=100)
    assert [(s.start_ns, s.end_ns) for s in segs] == [(0, 20), (30, 100)]  # a repeated True changes nothing
    numbers = [0, 0, 1, -1, 2]
    events = [(i * 10, *parse_command(T[INT_TYPES[2]](data=n), INT_TYPES[2])) for i, n in enumerate(numbers)]
    segs, _ = segments(events, end_ns=100)
    assert [(s.start_ns, s.end_ns, s.label) for s in segs] == [
        (0, 20, "episode number 0"),
        (20, 30, "episode number 1"),
        (40, 100, "episode number 2"),
    ]


def test_joint_units() -> None:
    names = ["a", "b", "grip"]
    rad = np.array([[np.pi / 2, -np.pi, 0.25]])
    assert JointUnits("deg").convert(rad, names).tolist() == [[90.0, -180.0, pytest.approx(14.323944)]]
    percent = JointUnits("deg", "grip", (0.0, 0.5))
    assert percent.convert(rad, names)[0, 2] == pytest.approx(50.0)
    assert percent.convert(rad, names, delta=True)[0, 2] == pytest.approx(50.0)
    assert JointUnits("deg", "grip", (0.5, 1.0)).convert(rad, names, delta=True)[0, 2] == pytest.approx(50.0)
    assert JointUnits("rad").convert(rad, names)[0, 0] == pytest.approx(np.pi / 2)
    assert percent.info(names)["units"] == ["deg", "deg", "percent"]
    with pytest.raises(ValueError):
        JointUnits("grad")
    with pytest.raises(ValueError):
        JointUnits("deg", gripper_joint="grip")


def test_vectors_and_images() -> None:
    msg = joint_state(5, ["b", "a"], [2.0, 1.0])
    assert extract.select(extract.read_vector(msg, extract.JOINT_STATE), ["a", "b"]).tolist() == [1.0, 2.0]
    with pytest.raises(extract.MessageError, match="missing"):
        extract.select(extract.read_vector(msg, extract.JOINT_STATE), ["a", "c"])
    chunk = action_chunk(5, ["x", "y"], np.array([[1.0, 2.0], [3.0, 4.0]]), space="eef_delta_gripper")
    vec = extract.read_vector(chunk, "rynnvla_ros/msg/ActionChunk")
    assert vec.values.tolist() == [1.0, 2.0] and not vec.joint_space
    chunk.horizon = 3
    with pytest.raises(extract.MessageError, match="horizon"):
        extract.read_vector(chunk, "rynnvla_ros/msg/ActionChunk")
    assert extract.header_ns(msg) == 5 and extract.header_ns(T[STRING](data="x")) is None
    image = T["sensor_msgs/msg/Image"](
        header=msg.header, height=2, width=2, encoding="bgr8", is_bigendian=0, step=8,
        data=np.array([1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0], np.uint8),
    )  # fmt: skip
    assert extract.check_image(image, extract.IMAGE) == (2, 2)
    assert extract.decode_rgb(image, extract.IMAGE)[1, 1].tolist() == [12, 11, 10]  # row padding, bgr -> rgb
    image.data = image.data[:10]
    with pytest.raises(extract.MessageError):
        extract.check_image(image, extract.IMAGE)


def test_parse_image_size() -> None:
    assert parse_image_size("256") == (256, 256) and parse_image_size("224x320") == (224, 320)
    assert parse_image_size(None) is None
    for bad in ("0", "axb", "1x2x3"):
        with pytest.raises(ValueError):
            parse_image_size(bad)


def test_subsample_keeps_the_frame_nearest_each_tick() -> None:
    ms = 1_000_000
    times = np.array([0, 33, 67, 95, 133, 167, 240, 267, 300, 333], dtype=np.int64) * ms  # 30 Hz, 200 ms missing
    kept = subsample(times, 10)
    assert (times[kept] // ms).tolist() == [0, 95, 167, 300]  # 200 ms: the nearer of 167 and 240
    assert subsample(times, 30).all()  # at (or near) the camera's rate every frame is kept
    assert subsample(times[:1], 10).tolist() == [True]
