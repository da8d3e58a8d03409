"""Link transforms of the arm: composed along the chain they give the URDF's forward kinematics."""

import numpy as np
import pytest

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.viewing.kinematics import (
    ARM_CHAIN,
    chain_points,
    joint_positions_by_name,
    link_transforms,
    matrix_to_quaternion,
)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


@pytest.mark.parametrize("seed", range(5))
def test_quaternion_round_trip(seed):
    rng = np.random.default_rng(seed)
    r = desc.axis_angle_matrix(rng.normal(size=3), rng.uniform(-np.pi, np.pi))
    q = matrix_to_quaternion(r)
    assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
    np.testing.assert_allclose(quaternion_to_matrix(q), r, atol=1e-12)
    np.testing.assert_allclose(matrix_to_quaternion(np.diag([1.0, -1.0, -1.0])), [1, 0, 0, 0], atol=1e-12)


def test_transforms_compose_to_forward_kinematics():
    q = np.array([0.3, -0.8, 0.9, 0.5, -1.2, 0.4])
    transforms = link_transforms(q)
    assert {t.child for t in transforms} == set(desc.forward_kinematics(q)) - {desc.BASE_LINK}
    poses = {desc.BASE_LINK: np.eye(4)}
    pending = list(transforms)
    while pending:  # compose parents before children
        t = next(t for t in pending if t.parent in poses)
        local = np.eye(4)
        local[:3, :3], local[:3, 3] = quaternion_to_matrix(t.rotation), t.translation
        poses[t.child] = poses[t.parent] @ local
        pending.remove(t)
    for link, pose in desc.forward_kinematics(q).items():
        np.testing.assert_allclose(poses[link], pose, atol=1e-12)
    np.testing.assert_allclose(chain_points(q)[-1], desc.forward_kinematics(q)[desc.EE_LINK][:3, 3])
    assert chain_points(q).shape == (len(ARM_CHAIN), 3)


def test_joint_states_by_name_drop_nan_and_keep_extras():
    got = joint_positions_by_name(["gripper", "shoulder_pan", "camera_tilt"], [0.2, float("nan"), 1.0])
    assert got == {"gripper": 0.2, "camera_tilt": 1.0}
    # a missing joint stays at zero in the transforms
    zero = {t.child: t.rotation for t in link_transforms(np.zeros(6))}
    partial = {t.child: t.rotation for t in link_transforms(got)}
    assert np.allclose(partial["shoulder_link"], zero["shoulder_link"])
    assert not np.allclose(partial["moving_jaw_so101_v1_link"], zero["moving_jaw_so101_v1_link"])
