"""Robot I/O mapping: joint states by name, unit conversion, relative actions, the JSON file."""

import json
import math

import numpy as np
import pytest

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.inference.robot_io import ROBOT_IO_FILE, JointMap, RobotIO, RobotIOError, so100_lerobot

NAMES = list(desc.JOINT_NAMES)


def test_joint_vector_takes_names_in_any_order_and_ignores_extra_joints():
    io = so100_lerobot()
    names = ["gripper", "camera_pan", *reversed(NAMES[:-1])]
    positions = [0.6, 9.0, 0.5, 0.4, 0.3, 0.2, 0.1]
    np.testing.assert_array_equal(io.joint_vector(names, positions), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])


@pytest.mark.parametrize(
    ("names", "positions", "match"),
    [
        (NAMES[:-1], [0.0] * 5, "lacks joint\\(s\\) gripper"),
        (NAMES, [0.0, math.nan, 0, 0, 0, 0], "non-finite position\\(s\\) for shoulder_lift"),
        (NAMES, [0.0, 0, 0, 0, math.inf, 0], "non-finite position\\(s\\) for wrist_roll"),
        ([*NAMES, "gripper"], [0.0] * 7, "names gripper twice"),
        (NAMES, [0.0] * 3, "6 names but 3 positions"),
    ],
)
def test_unusable_joint_states_are_rejected_with_the_reason(names, positions, match):
    with pytest.raises(RobotIOError, match=match):
        so100_lerobot().joint_vector(names, positions)


def test_so100_convention_is_lerobot_degrees_and_gripper_percent():
    io = so100_lerobot()
    limits = desc.joint_limits()
    g = NAMES.index("gripper")
    q = np.array([0.1, -0.2, 0.3, -0.4, 0.5, limits.lower[g]])
    state = io.to_model_state(q)
    np.testing.assert_allclose(state[:5], np.degrees(q[:5]))
    assert state[5] == pytest.approx(0.0)
    q[g] = limits.upper[g]
    assert io.to_model_state(q)[5] == pytest.approx(100.0)
    assert io.relative_mask.tolist() == [True] * 5 + [False]


def test_relative_actions_become_absolute_radians_and_back():
    io = so100_lerobot()
    q = np.array([0.1, -0.2, 0.3, -0.4, 0.5, 0.2])
    # the model predicts deltas (degrees) for joints 0-4 and an absolute gripper percentage
    actions = np.array([[10.0, 0.0, -5.0, 0.0, 0.0, 50.0], [0.0, 20.0, 0.0, 0.0, -90.0, 0.0]])
    pos = io.to_joint_positions(actions, q)
    np.testing.assert_allclose(pos[:, :5], q[:5] + np.radians(actions[:, :5]))
    g = NAMES.index("gripper")
    lo, hi = desc.joint_limits().lower[g], desc.joint_limits().upper[g]
    np.testing.assert_allclose(pos[:, 5], [lo + 0.5 * (hi - lo), lo])
    np.testing.assert_allclose(io.to_model_action(pos, q), actions, atol=1e-9)


def test_absolute_mapping_with_affine_units():
    io = RobotIO((JointMap("a", 2.0, 1.0), JointMap("b", -1.0, 0.0)), control_period=0.1, cameras=("front",))
    np.testing.assert_allclose(io.to_joint_positions(np.array([[3.0, 0.5]]), np.array([9.0, 9.0])), [[1.0, -0.5]])
    np.testing.assert_allclose(io.to_model_action(np.array([1.0, -0.5]), np.array([9.0, 9.0])), [3.0, 0.5])
    assert not io.use_wrist


def test_file_round_trip_and_loading_from_a_directory(tmp_path):
    io = so100_lerobot(control_period=0.05, history=2, cameras=("front",))
    path = io.save(tmp_path)
    assert path == tmp_path / ROBOT_IO_FILE
    data = json.loads(path.read_text())
    assert data["format_version"] == 1 and data["history"] == 2 and data["cameras"] == ["front"]
    assert [j["relative"] for j in data["joints"]] == [True] * 5 + [False]
    assert RobotIO.load(tmp_path) == io


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format_version": 2}, "format_version must be 1"),
        ({"colour": "red"}, "unknown key\\(s\\) colour"),
        ({"history": 0}, "history must be an integer >= 1"),
        ({"cameras": ["wrist"]}, "cameras must be one of"),
        ({"control_period": 0}, "control_period must be > 0"),
        ({"joints": [{"name": "a", "scale": 0.0}]}, "scale must be finite and non-zero"),
        ({"joints": [{"name": "a"}]}, "invalid mapping"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, change, match):
    data = so100_lerobot().to_dict() | change
    path = tmp_path / "robot_io.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RobotIOError, match=match) as info:
        RobotIO.load(path)
    assert str(path) in str(info.value)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(RobotIOError, match="robot I/O file not found"):
        RobotIO.load(tmp_path / "nope.json")


def test_check_model_compares_sizes():
    io = so100_lerobot()
    io.check_model(6, 6)
    with pytest.raises(RobotIOError, match="7-d actions"):
        io.check_model(7, 6)
    with pytest.raises(RobotIOError, match="8-d state"):
        io.check_model(6, 8)
    with pytest.raises(RobotIOError, match="no state stats"):
        io.check_model(6, None)
