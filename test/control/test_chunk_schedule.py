"""Chunk validation, conversion to absolute timed targets, skipping of past steps, blending and sampling."""

import numpy as np
import pytest

from rynnvla_ros.control.chunk_schedule import (
    ChunkLimits,
    ChunkRejected,
    ChunkSchedule,
    Trajectory,
    trajectory_from_chunk,
    trajectory_from_points,
)
from rynnvla_ros.control.so100_description import JOINT_NAMES

NAMES = list(JOINT_NAMES)


def chunk(rows, *, names=NAMES, space="joint_positions", stamp=100.0, dt=0.1, start_step=0, reference=None, **kw):
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    fields = dict(
        names=names,
        action_space=space,
        stamp=stamp,
        dt=dt,
        start_step=start_step,
        horizon=rows.shape[0],
        dim=rows.shape[1],
        data=rows.ravel().tolist(),
        reference=reference or (lambda t: None),
    )
    fields.update(kw)
    return trajectory_from_chunk(**fields)


def test_rows_are_timed_from_stamp_and_start_step_and_reordered_to_joint_names():
    rows = np.arange(12, dtype=float).reshape(2, 6) / 10
    reversed_names = NAMES[::-1]
    traj = chunk(rows, names=reversed_names, stamp=100.0, dt=0.05, start_step=3)
    np.testing.assert_allclose(traj.times, [100.15, 100.2])
    np.testing.assert_allclose(traj.positions, rows[:, ::-1])


def test_deltas_are_relative_to_the_state_at_the_stamp():
    asked = []

    def reference(t):
        asked.append(t)
        return np.full(6, 0.5)

    traj = chunk([[0.1] * 6, [0.2] * 6], space="joint_deltas", stamp=42.0, reference=reference)
    assert asked == [42.0]
    np.testing.assert_allclose(traj.positions, [[0.6] * 6, [0.7] * 6])
    with pytest.raises(ChunkRejected, match="no measured joint state"):
        chunk([[0.1] * 6], space="joint_deltas")


@pytest.mark.parametrize(
    ("rows", "kw", "reason"),
    [
        ([[np.nan, 0, 0, 0, 0, 0]], {}, "non-finite"),
        ([[0, 0, np.inf, 0, 0, 0]], {}, "non-finite"),
        ([[0] * 6], {"space": "eef_delta_gripper"}, "action space 'eef_delta_gripper'"),
        ([[0] * 6], {"dim": 5}, "dim is 5 but 6 names"),
        ([[0] * 6], {"data": [0.0] * 7}, "data holds 7 values"),
        ([[0] * 6], {"horizon": 0, "data": []}, "empty chunk"),
        ([[0] * 6], {"dt": 0.0}, "dt must be"),
        ([[0] * 6], {"dt": float("nan")}, "dt must be"),
        ([[0] * 6], {"names": [*NAMES[:5], "elbow"]}, "unknown joint(s) elbow"),
        ([[0] * 5], {"names": NAMES[:5]}, "missing joint(s) gripper"),
        ([[0] * 6], {"names": [*NAMES[:5], "shoulder_pan"]}, "named twice"),
        ([[0, 45.0, 0, 0, 0, 0]], {}, "degrees sent instead of radians"),
        ([[0, 4.0, 0, 0, 0, 0]], {"space": "joint_deltas", "reference": lambda t: np.zeros(6)}, "deltas up to 4"),
    ],
)
def test_malformed_chunks_are_rejected_with_a_reason(rows, kw, reason):
    with pytest.raises(ChunkRejected) as err:
        chunk(rows, **kw)
    assert reason in str(err.value)


def test_oversized_chunks_are_rejected():
    with pytest.raises(ChunkRejected, match="oversized chunk: 11 steps > max_chunk_steps 10"):
        chunk(np.zeros((11, 6)), limits=ChunkLimits(max_steps=10))


def test_joint_trajectory_points():
    traj = trajectory_from_points(
        names=NAMES[::-1], stamp=10.0, times_from_start=[0.5, 1.0], positions=[[0.1] * 6, list(range(6))]
    )
    np.testing.assert_allclose(traj.times, [10.5, 11.0])
    np.testing.assert_allclose(traj.positions[1], [5, 4, 3, 2, 1, 0])
    for kw, reason in [
        ({"times_from_start": [], "positions": []}, "without points"),
        ({"times_from_start": [1.0, 1.0], "positions": [[0] * 6] * 2}, "strictly increasing"),
        ({"times_from_start": [1.0], "positions": [[0] * 5]}, "needs 6 positions"),
        ({"times_from_start": [1.0], "positions": [[np.nan] * 6]}, "non-finite"),
    ]:
        with pytest.raises(ChunkRejected, match=reason):
            trajectory_from_points(names=NAMES, stamp=0.0, **kw)


def traj(times, values) -> Trajectory:
    """A trajectory whose joints all follow ``values``."""
    return Trajectory(np.asarray(times, dtype=float), np.repeat(np.asarray(values, dtype=float)[:, None], 6, axis=1))


def test_past_steps_are_skipped_and_the_plan_starts_at_the_current_target():
    s = ChunkSchedule("latest")
    kept = s.add(traj([9.0, 9.5, 10.5, 11.0], [5.0, 5.0, 1.0, 2.0]), now=10.0, current=np.zeros(6))
    assert kept == 2
    np.testing.assert_allclose(s.sample(10.0), 0.0)  # no jump: starts where the command is
    np.testing.assert_allclose(s.sample(10.25), 0.5)  # linear towards the first future step
    np.testing.assert_allclose(s.sample(10.75), 1.5)  # interpolated between steps (control rate > chunk rate)
    np.testing.assert_allclose(s.sample(12.0), 2.0)  # held after the last step
    assert s.end_time == 11.0
    # the skipped past steps (5.0) never appear
    assert max(s.sample(t)[0] for t in np.linspace(10.0, 11.0, 101)) <= 2.0


def test_a_chunk_entirely_in_the_past_is_rejected_and_the_plan_kept():
    s = ChunkSchedule()
    s.add(traj([11.0], [1.0]), now=10.0, current=np.zeros(6))
    with pytest.raises(ChunkRejected, match="all 2 steps are in the past"):
        s.add(traj([9.0, 9.5], [3.0, 3.0]), now=10.2, current=np.zeros(6))
    np.testing.assert_allclose(s.sample(11.0), 1.0)


def test_latest_replaces_the_plan_from_where_it_is():
    s = ChunkSchedule("latest")
    s.add(traj([11.0], [1.0]), now=10.0, current=np.zeros(6))  # ramp 0 -> 1 over [10, 11]
    s.add(traj([10.5, 11.5], [-1.0, -1.0]), now=10.25, current=np.zeros(6))
    np.testing.assert_allclose(s.sample(10.25), 0.25)
    np.testing.assert_allclose(s.sample(10.5), -1.0)
    np.testing.assert_allclose(s.sample(11.0), -1.0)


def test_crossfade_moves_from_the_old_plan_to_the_new_one():
    s = ChunkSchedule("crossfade", crossfade_time=0.4)
    s.add(traj([10.0, 20.0], [1.0, 1.0]), now=9.0, current=np.ones(6))  # old plan: constant 1
    s.add(traj([11.0, 20.0], [3.0, 3.0]), now=10.0, current=np.zeros(6))  # new plan: 1 -> 3 over [10, 11], then 3
    np.testing.assert_allclose(s.sample(10.0), 1.0)
    # at 10.2 half-way: 0.5 * old (1) + 0.5 * new (1 + 2 * 0.2 = 1.4) = 1.2
    np.testing.assert_allclose(s.sample(10.2), 1.2, atol=1e-12)
    np.testing.assert_allclose(s.sample(10.4), 1.8, atol=1e-12)  # fully the new plan from 10.4 on
    np.testing.assert_allclose(s.sample(10.7), 2.4, atol=1e-12)
    np.testing.assert_allclose(s.sample(15.0), 3.0)


def test_weighted_averages_the_overlap_then_follows_the_new_chunk():
    s = ChunkSchedule("weighted", weight=0.7)
    s.add(traj([10.0, 11.0, 12.0], [1.0, 1.0, 1.0]), now=9.9, current=np.ones(6))  # old plan ends at 12
    s.add(traj([10.5, 11.0, 13.0], [2.0, 2.0, 2.0]), now=10.0, current=np.zeros(6))
    np.testing.assert_allclose(s.sample(10.0), 1.0)  # starts where the plan was
    np.testing.assert_allclose(s.sample(11.0), 0.3 * 1.0 + 0.7 * 2.0)
    np.testing.assert_allclose(s.sample(13.0), 2.0)


def test_a_chunk_after_the_plan_ended_starts_from_its_last_target():
    for mode in ("latest", "crossfade", "weighted"):
        s = ChunkSchedule(mode)
        s.add(traj([10.0], [1.0]), now=9.0, current=np.zeros(6))
        s.add(traj([12.0], [3.0]), now=11.0, current=np.zeros(6))
        np.testing.assert_allclose(s.sample(11.0), 1.0, err_msg=mode)
        np.testing.assert_allclose(s.sample(12.0), 3.0, err_msg=mode)


def test_hold_and_clear():
    s = ChunkSchedule()
    assert s.empty and s.sample(0.0) is None
    s.add(traj([11.0], [1.0]), now=10.0, current=np.zeros(6))
    s.hold(10.5, np.full(6, 0.4))
    np.testing.assert_allclose(s.sample(12.0), 0.4)
    assert s.end_time == 10.5
    s.clear()
    assert s.empty


def test_bad_blend_settings_are_refused():
    with pytest.raises(ValueError, match="blend mode"):
        ChunkSchedule("average")
    with pytest.raises(ValueError, match="weight"):
        ChunkSchedule("weighted", weight=1.5)


@pytest.mark.parametrize("mode", ["latest", "crossfade", "weighted"])
def test_no_chunk_ever_makes_the_target_jump(mode):
    rng = np.random.default_rng(3)
    s = ChunkSchedule(mode, crossfade_time=0.3)
    now, current = 0.0, np.zeros(6)
    for _ in range(40):  # chunks arriving faster and slower than the crossfade, overlapping or not
        before = s.sample(now) if not s.empty else current
        steps = now + rng.uniform(-0.2, 0.1) + 0.05 * np.arange(1, rng.integers(6, 12))  # some steps in the past
        s.add(Trajectory(steps, rng.uniform(-1, 1, (steps.size, 6))), now, current)
        np.testing.assert_allclose(s.sample(now), before, atol=1e-12)
        now += rng.uniform(0.02, 0.6)
