"""The planned path of a chunk: the targets the controller aims at, and the gripper positions they reach."""

import numpy as np
import pytest

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.inference.chunks import Chunk, ChunkError
from rynnvla_ros.viewing.planned_path import joint_targets, path_colors, plan_chunk

NS = 1_000_000_000
NAMES = list(desc.JOINT_NAMES)
Q = {"shoulder_pan": 0.1, "shoulder_lift": -0.5, "elbow_flex": 0.6, "wrist_flex": 0.4, "wrist_roll": 0.0,
     "gripper": 0.3}  # fmt: skip


def chunk(rows, names=NAMES, space="joint_positions", start_step=1, dt=0.1, stamp=5 * NS) -> Chunk:
    rows = np.atleast_2d(rows)
    return Chunk.from_fields(stamp, names, space, dt, start_step, rows.shape[0], rows.shape[1], rows.ravel())


def test_positions_give_the_gripper_path_at_the_due_times():
    rows = np.array([list(Q.values())] * 3) + np.linspace(0, 0.3, 3)[:, None]
    plan = plan_chunk(chunk(rows[:, ::-1], names=NAMES[::-1]), dry_run=True)  # any column order
    np.testing.assert_allclose(plan.joints, rows)
    assert plan.times.tolist() == [5 * NS + i * NS // 10 for i in (1, 2, 3)] and plan.duration == pytest.approx(0.2)
    for q, p in zip(rows, plan.gripper, strict=True):
        np.testing.assert_allclose(p, desc.forward_kinematics(q)[desc.EE_LINK][:3, 3])
    np.testing.assert_allclose(plan.final_pose[-1], plan.gripper[-1])
    assert plan.dry_run and np.linalg.norm(plan.gripper[-1] - plan.gripper[0]) > 0.01


def test_targets_are_clipped_into_the_limits():
    limits = desc.joint_limits()
    rows = np.array([list(Q.values())])
    rows[0, 0] = limits.upper[0] + 1.0
    assert joint_targets(chunk(rows), None)[0, 0] == limits.upper[0]


def test_deltas_and_missing_joints_use_the_joint_state():
    deltas = np.full((2, 6), 0.1)
    np.testing.assert_allclose(
        joint_targets(chunk(deltas, space="joint_deltas"), Q), np.array([list(Q.values())] * 2) + 0.1
    )
    partial = joint_targets(chunk(np.array([[1.0]]), names=["shoulder_pan"]), Q)
    assert partial[0, 0] == 1.0 and partial[0, 1:].tolist() == list(Q.values())[1:]
    with pytest.raises(ChunkError, match="no joint state for"):
        joint_targets(chunk(deltas, space="joint_deltas"), None)
    with pytest.raises(ChunkError, match="names none of the arm's joints"):
        joint_targets(chunk(np.zeros((1, 1)), names=["x"]), Q)


def test_colours_run_from_light_to_saturated_and_differ_for_dry_runs():
    executed, dry = path_colors(5, False), path_colors(5, True)
    assert executed.shape == (5, 4) and np.all(executed[:, 3] == 1.0)
    assert executed[0].sum() > executed[-1].sum() and not np.allclose(executed, dry)
    assert path_colors(1, False, alpha=0.5)[0, 3] == 0.5
