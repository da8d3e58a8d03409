"""Reading action chunks back into the model's action space (world model input)."""

import numpy as np
import pytest

from rynnvla_ros.inference.chunks import Chunk, ChunkError
from rynnvla_ros.inference.history import NS
from rynnvla_ros.inference.robot_io import so100_lerobot

NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
T0 = 500 * NS
DT = 0.1


def chunk(rows: np.ndarray, names=NAMES, space="joint_positions", start_step=0) -> Chunk:
    return Chunk.from_fields(T0, names, space, DT, start_step, rows.shape[0], rows.shape[1], rows.ravel().tolist())


def test_policy_output_maps_back_to_the_model_action():
    io = so100_lerobot()
    q = np.array([0.1, -0.2, 0.3, -0.4, 0.5, 0.2])
    actions = np.array([[10.0, -3.0, 2.0, 0.0, 1.0, 40.0], [1.0, 2.0, 3.0, 4.0, 5.0, 60.0]])
    c = chunk(io.to_joint_positions(actions, q))
    np.testing.assert_allclose(c.model_action(1, io, q), actions[1], atol=1e-9)
    # columns in another order are matched by name
    perm = [5, 0, 4, 1, 3, 2]
    c2 = chunk(io.to_joint_positions(actions, q)[:, perm], names=[NAMES[i] for i in perm])
    np.testing.assert_allclose(c2.model_action(0, io, q), actions[0], atol=1e-9)


def test_joint_delta_chunks_are_made_absolute_first():
    io = so100_lerobot()
    q = np.array([0.1, -0.2, 0.3, -0.4, 0.5, 0.2])
    deltas = np.full((1, 6), 0.01)
    got = chunk(deltas, space="joint_deltas").model_action(0, io, q)
    np.testing.assert_allclose(got, io.to_model_action(q + 0.01, q))


def test_step_due_at_a_time_and_the_time_of_the_next_frames():
    c = chunk(np.zeros((5, 6)), start_step=2)
    assert c.step_at(T0) == 0  # before the first row: the first row
    assert c.step_at(T0 + int(3.5 * DT * NS)) == 1
    assert c.step_at(T0 + int(6 * DT * NS)) == 4
    with pytest.raises(ChunkError, match="ended"):
        c.step_at(T0 + int(7 * DT * NS))
    assert c.next_frame_time(0) == T0 + int(3 * DT * NS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"space": "cartesian_pose"}, "is not one of"),
        ({"names": NAMES[:5]}, "does not fit"),
    ],
)
def test_bad_chunks(kwargs, match):
    with pytest.raises(ChunkError, match=match):
        chunk(np.zeros((2, 6)), **kwargs)


def test_missing_joint_and_missing_state():
    io = so100_lerobot()
    c = Chunk.from_fields(T0, ["a"] * 1, "joint_positions", DT, 0, 1, 1, [0.0])
    with pytest.raises(ChunkError, match="lacks joint"):
        c.model_action(0, io, np.zeros(6))
    with pytest.raises(ChunkError, match="joint state is needed"):
        chunk(np.zeros((1, 6))).model_action(0, io, None)
    with pytest.raises(ChunkError, match="non-finite"):
        chunk(np.full((1, 6), np.nan))
