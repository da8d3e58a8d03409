"""LIBERO's robot I/O: an 8-d state by name, 7-d end-effector actions published unchanged (policy and world
model), and the tiny LIBERO checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rynnvla_model.data.libero import STATE_NAMES
from rynnvla_ros.inference.chunks import Chunk, ChunkError
from rynnvla_ros.inference.robot_io import JointMap, RobotIO, RobotIOError, so100_lerobot
from rynnvla_ros.libero.protocol import ACTION_NAMES, ACTION_SPACE, libero_robot_io

NS = 1_000_000_000


def test_libero_io_reads_the_state_by_name_and_passes_actions_through():
    io = libero_robot_io()
    assert (io.dim, io.action_dim, io.history, io.control_period) == (8, 7, 2, 0.05)
    assert io.chunk_names == list(ACTION_NAMES) and io.action_space == ACTION_SPACE and not io.joint_actions
    state = np.arange(8) / 10.0
    # the bridge's JointState, any order
    q = io.joint_vector(list(reversed(STATE_NAMES)), list(reversed(state.tolist())))
    np.testing.assert_array_equal(io.to_model_state(q), state)
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 7))
    rows = io.to_chunk_rows(actions, q)
    np.testing.assert_array_equal(rows, actions)
    assert rows is not actions
    np.testing.assert_array_equal(io.to_model_action(rows[2], q), actions[2])
    io.check_model(7, 8)
    with pytest.raises(RobotIOError, match="7 eef_delta_gripper dims"):
        io.check_model(8, 8)
    with pytest.raises(RobotIOError, match="shape"):
        io.to_chunk_rows(np.zeros((5, 8)), q)


def test_libero_io_survives_its_json_and_old_files_stay_joint_positions(tmp_path):
    io = libero_robot_io()
    again = RobotIO.load(io.save(tmp_path))
    assert again == io and again.action_names == io.action_names
    data = json.loads((tmp_path / "robot_io.json").read_text())
    assert data["action_space"] == "eef_delta_gripper" and data["action_names"] == list(ACTION_NAMES)
    so100 = so100_lerobot()
    assert "action_space" not in so100.to_dict()  # files of joint-action checkpoints are unchanged
    assert RobotIO.from_dict(so100.to_dict()).joint_actions


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"action_space": "cartesian"}, "action_space must be one of"),
        ({"action_names": ()}, "needs distinct action_names"),
        ({"action_names": ("x", "x")}, "needs distinct action_names"),
        ({"joints": (JointMap("a", 1.0, 0.0, True),)}, "no joint can be relative"),
        ({"action_space": "joint_positions"}, "only for action_space eef_delta_gripper"),
    ],
)
def test_bad_end_effector_mappings_are_refused(kwargs, match):
    base = {
        "joints": (JointMap("a", 1.0),),
        "control_period": 0.05,
        "action_space": "eef_delta_gripper",
        "action_names": ("x", "gripper"),
    }
    with pytest.raises(RobotIOError, match=match):
        RobotIO(**(base | kwargs))


def test_world_model_reads_end_effector_chunks_back():
    rows = np.random.default_rng(1).uniform(-1, 1, (3, 7))
    perm = [6, 0, 1, 2, 3, 4, 5]
    chunk = Chunk.from_fields(NS, [ACTION_NAMES[i] for i in perm], ACTION_SPACE, 0.05, 0, 3, 7, rows[:, perm].ravel())
    np.testing.assert_allclose(chunk.model_action(1, libero_robot_io(), None), rows[1])
    with pytest.raises(ChunkError, match="does not fit"):
        chunk.model_action(0, so100_lerobot(), np.zeros(6))
    joints = Chunk.from_fields(NS, so100_lerobot().names, "joint_positions", 0.05, 0, 1, 6, [0.0] * 6)
    with pytest.raises(ChunkError, match="does not fit"):
        joints.model_action(0, libero_robot_io(), None)


def test_tiny_libero_checkpoint_predicts_seven_dim_chunks(tmp_path):
    from rynnvla_model.policy import RynnVLAPolicy
    from rynnvla_ros.inference.tiny_checkpoint import make_tiny_libero_checkpoint

    directory = make_tiny_libero_checkpoint(tmp_path / "tiny", image_size=32, time_horizon=5)
    assert RobotIO.load(directory) == libero_robot_io()
    policy = RynnVLAPolicy.from_pretrained(directory)
    assert (policy.action_dim, policy.time_horizon, policy.processor.state_dim) == (7, 5, 8)
    frames = [np.zeros((32, 32, 3), np.uint8)] * 2
    result = policy.predict_chunk("open the drawer", np.zeros(8), frames, frames)
    assert result.actions.shape == (5, 7)
    # LIBERO's bounds: actions within [-1, 1] (the gripper command too)
    assert np.all(np.abs(result.actions) <= 1.0 + 1e-9)
