"""Position clipping, per-step and velocity limits (direction kept) and the ramp-in of the safety filter."""

import numpy as np
import pytest

from rynnvla_ros.control.safety import RAMP_FLOOR, SafetyConfig, SafetyFilter
from rynnvla_ros.control.so100_description import JointLimits, joint_limits

LIMITS = JointLimits(
    lower=np.full(6, -1.0), upper=np.full(6, 1.0), velocity=np.array([2.0, 2.0, 2.0, 2.0, 2.0, 0.5]), effort=np.ones(6)
)


def test_clip_uses_the_limits_and_margin():
    f = SafetyFilter(SafetyConfig(limit_margin=0.1), LIMITS)
    clipped, changed = f.clip(np.array([2.0, -2.0, 0.0, 0.5, 0.95, -0.95]))
    np.testing.assert_allclose(clipped, [0.9, -0.9, 0.0, 0.5, 0.9, -0.9])
    assert changed and not f.clip(np.zeros(6))[1]
    with pytest.raises(ValueError, match="no room"):
        SafetyFilter(SafetyConfig(limit_margin=1.0), LIMITS)


def test_velocity_limit_scales_the_whole_step_and_uses_the_urdf_cap():
    f = SafetyFilter(SafetyConfig(max_velocity=1.0, max_step=10.0, ramp_time=0.0), LIMITS)
    f.start(0.0, np.zeros(6))
    cmd = f.limit(np.array([1.0, 0.5, 0, 0, 0, 0]), 0.1)  # wants 1.0 rad in 0.1 s, 0.1 rad allowed
    np.testing.assert_allclose(cmd, [0.1, 0.05, 0, 0, 0, 0])  # same direction, scaled
    f.start(0.0, np.zeros(6))
    cmd = f.limit(np.array([0, 0, 0, 0, 0, 1.0]), 0.1)  # the gripper's URDF velocity (0.5) is below max_velocity
    np.testing.assert_allclose(cmd[5], 0.05)


def test_per_step_limit_bounds_a_late_tick():
    f = SafetyFilter(SafetyConfig(max_velocity=1.0, max_step=0.02, ramp_time=0.0), LIMITS)
    f.start(0.0, np.zeros(6))
    cmd = f.limit(np.full(6, 0.5), 1.0)  # a stalled loop: 1 s since the last command
    np.testing.assert_allclose(cmd, 0.02)


def test_ramp_in_starts_slow_and_reaches_the_full_limit():
    f = SafetyFilter(SafetyConfig(max_velocity=1.0, max_step=1.0, ramp_time=2.0), LIMITS)
    f.start(10.0, np.zeros(6))
    assert f.ramp(10.0) == RAMP_FLOOR and f.ramp(11.0) == pytest.approx(0.5) and f.ramp(13.0) == 1.0
    cmd = f.limit(np.array([1.0, 0, 0, 0, 0, 0]), 10.01)
    assert cmd[0] == pytest.approx(RAMP_FLOOR * 1.0 * 0.01)


def test_targets_reached_when_within_limits_and_hold():
    f = SafetyFilter(SafetyConfig(ramp_time=0.0), joint_limits())
    f.start(0.0, np.zeros(6))
    target = np.array([0.01, -0.01, 0.0, 0.005, 0.0, 0.0])
    np.testing.assert_allclose(f.limit(target, 0.01), target)
    np.testing.assert_allclose(f.hold(np.ones(6), 0.02), 1.0)
    np.testing.assert_allclose(f.last, 1.0)
    with pytest.raises(RuntimeError, match="before start"):
        SafetyFilter(SafetyConfig(), LIMITS).limit(np.zeros(6), 0.0)
    with pytest.raises(ValueError, match="max_velocity"):
        SafetyConfig(max_velocity=0.0)
