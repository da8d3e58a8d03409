"""Frame history selection and observation gating (no ROS)."""

import numpy as np
import pytest

from rynnvla_ros.inference.history import NS, StampedBuffer, select_history
from rynnvla_ros.inference.observation import ObservationAssembler, Rejected, Rejections
from rynnvla_ros.inference.robot_io import so100_lerobot

MS = NS // 1000
T0 = 1_000 * NS
NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
Q = [0.1, 0.2, 0.3, 0.4, 0.5, 0.2]


def frame(i: int) -> np.ndarray:
    return np.full((4, 4, 3), i, np.uint8)


def test_buffer_keeps_order_span_and_finds_the_nearest():
    buf = StampedBuffer[int](span_ns=100 * MS)
    for t in (0, 30, 10, 60):  # one out of order
        buf.add(T0 + t * MS, t)
    assert [buf.nearest(T0 + t * MS).value for t in (-5, 4, 6, 22, 44, 1000)] == [0, 0, 10, 30, 30, 60]
    assert buf.nearest(T0 + 20 * MS).value == 30  # a tie goes to the later sample
    buf.add(T0 + 150 * MS, 150)  # everything older than 50 ms is dropped
    assert [buf.nearest(T0 + t * MS).value for t in (0, 200)] == [60, 150] and len(buf) == 2


def _buffers(times_ms: list[int], wrist_offset_ms: int | None = 3):
    front, wrist = StampedBuffer[np.ndarray](NS), StampedBuffer[np.ndarray](NS)
    for i, t in enumerate(times_ms):
        front.add(T0 + t * MS, frame(i))
        if wrist_offset_ms is not None:
            wrist.add(T0 + (t + wrist_offset_ms) * MS, frame(100 + i))
    return front, wrist


def test_history_is_taken_at_the_control_period_oldest_first():
    front, wrist = _buffers([0, 16, 33, 50, 67, 83, 100])  # 60 Hz camera, 30 Hz control
    current = front.latest()
    fronts, wrists = select_history(front, wrist, current, 3, 33 * MS, 16 * MS, 50 * MS)
    assert [(f.stamp - T0) // MS for f in fronts] == [33, 67, 100]
    assert [(w.stamp - T0) // MS for w in wrists] == [36, 70, 103]


def test_history_starts_with_the_current_frame_only():
    front, wrist = _buffers([0])
    fronts, wrists = select_history(front, wrist, front.latest(), 2, 33 * MS, 16 * MS, 50 * MS)
    assert len(fronts) == len(wrists) == 1
    front, wrist = _buffers([0, 33])
    fronts, _ = select_history(front, wrist, front.latest(), 3, 33 * MS, 16 * MS, 50 * MS)
    assert [(f.stamp - T0) // MS for f in fronts] == [0, 33]  # only as far back as frames exist


def test_history_stops_at_a_gap_and_reports_a_missing_wrist():
    front, wrist = _buffers([0, 100])  # nothing near 67 ms
    fronts, _ = select_history(front, wrist, front.latest(), 2, 33 * MS, 16 * MS, 50 * MS)
    assert len(fronts) == 1
    front, wrist = _buffers([0, 33], wrist_offset_ms=None)
    fronts, wrists = select_history(front, wrist, front.latest(), 2, 33 * MS, 16 * MS, 50 * MS)
    assert wrists == [] and len(fronts) == 1
    fronts, wrists = select_history(front, None, front.latest(), 2, 33 * MS, 16 * MS, 50 * MS)
    assert wrists is None and len(fronts) == 2


def _assembler(**kw) -> ObservationAssembler:
    return ObservationAssembler(so100_lerobot(**kw), max_age=0.2)


def test_observation_holds_frames_state_and_the_front_stamp():
    a = _assembler(history=2)
    a.add_joint_state(T0 - 5 * MS, NAMES, Q)
    a.add_frame("wrist", T0 - 33 * MS, frame(1))
    a.add_frame("front", T0 - 33 * MS, frame(2))
    a.add_frame("wrist", T0 + 2 * MS, frame(3))
    obs, rejected = a.offer(a.add_frame("front", T0, frame(4)), "pick", now=T0 + 50 * MS)
    assert rejected == [] and obs.stamp == T0 and obs.task == "pick"
    assert [f[0, 0, 0] for f in obs.front] == [2, 4] and [w[0, 0, 0] for w in obs.wrist] == [1, 3]
    np.testing.assert_array_equal(obs.q, Q)
    np.testing.assert_allclose(obs.state, a.io.to_model_state(np.array(Q)))


@pytest.mark.parametrize(
    ("front_ms", "now_ms", "task", "key"),
    [
        (0, 250, "pick", "stale_image"),
        (300, 0, "pick", "future_image"),
        (0, 10, "", "no_task"),
    ],
)
def test_unusable_observations_are_refused(front_ms, now_ms, task, key):
    a = _assembler()
    a.add_joint_state(T0 + front_ms * MS, NAMES, Q)
    a.add_frame("wrist", T0 + front_ms * MS, frame(0))
    obs, rejected = a.offer(a.add_frame("front", T0 + front_ms * MS, frame(1)), task, now=T0 + now_ms * MS)
    assert obs is None and [r.key for r in rejected] == [key] and not a.pending


def test_a_front_frame_waits_for_its_wrist_frame_and_joint_state():
    a = _assembler()
    obs, rejected = a.offer(a.add_frame("front", T0, frame(1)), "pick", now=T0 + 1 * MS)
    assert obs is None and rejected == [] and a.pending
    a.add_frame("wrist", T0 + 1 * MS, frame(2))
    assert a.retry("pick", now=T0 + 2 * MS) == (None, [])  # still no joint state
    a.add_joint_state(T0 + 2 * MS, NAMES, Q)
    obs, rejected = a.retry("pick", now=T0 + 3 * MS)
    assert obs is not None and obs.stamp == T0 and rejected == [] and not a.pending


def test_a_waiting_frame_is_refused_when_replaced_or_too_old():
    a = _assembler()
    a.add_joint_state(T0, NAMES, Q)
    a.offer(a.add_frame("front", T0, frame(1)), "pick", now=T0)
    obs, rejected = a.offer(a.add_frame("front", T0 + 33 * MS, frame(2)), "pick", now=T0 + 33 * MS)
    assert obs is None and [r.key for r in rejected] == ["stale_wrist"] and a.pending
    obs, rejected = a.retry("pick", now=T0 + 300 * MS)  # aged out: refused for what it waited for
    assert obs is None and [r.key for r in rejected] == ["stale_wrist"] and not a.pending


def test_old_joint_state_is_refused():
    a = _assembler()
    a.add_joint_state(T0 + 500 * MS, NAMES, Q)  # newer than the image by more than max_age: waiting cannot help
    a.add_frame("wrist", T0, frame(0))
    obs, rejected = a.offer(a.add_frame("front", T0, frame(1)), "pick", now=T0 + 10 * MS)
    assert obs is None and [r.key for r in rejected] == ["stale_joint_state"]
    assert "-0.500 s from the image" in str(rejected[0])


def test_bad_joint_state_is_rejected_and_not_stored():
    a = _assembler()
    with pytest.raises(Rejected, match="lacks joint\\(s\\) gripper") as info:
        a.add_joint_state(T0, NAMES[:-1], Q[:-1])
    assert info.value.key == "missing_joint" and len(a.joints) == 0


def test_rejections_are_counted_and_their_logs_rate_limited():
    r = Rejections(log_period=2.0)
    assert r.add("stale_image", "old", now=0.0)
    assert not r.add("stale_image", "old", now=1.0)
    assert r.add("no_task", "none", now=1.0)
    assert r.add("stale_image", "old", now=2.5)
    assert r.counts == {"stale_image": 3, "no_task": 1} and r.total == 4 and r.latest == "old"
