"""The block-in-circle task: seeded layouts inside the reachable annulus, and the success predicate on the twin."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from rynnvla_ros.control.sim_backend import JAW_PAD_GEOMS, build_model
from rynnvla_ros.tasks.block_in_circle import (
    AZIMUTH,
    BLOCK_HALF,
    CIRCLE_RADIUS,
    MIN_SEPARATION,
    REACH,
    BlockInCircle,
    Layout,
    sample_layout,
)

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return build_model()


def test_layouts_are_seeded_reachable_and_apart():
    layouts = [sample_layout(seed) for seed in range(200)]
    assert sample_layout(7) == layouts[7]
    assert len({lay.block_xy for lay in layouts}) == 200
    for lay in layouts:
        for xy in (np.array(lay.block_xy), np.array(lay.target_xy)):
            assert REACH[0] <= np.linalg.norm(xy) <= REACH[1]
            assert abs(np.arctan2(xy[1], xy[0])) <= AZIMUTH
        assert np.linalg.norm(np.subtract(lay.block_xy, lay.target_xy)) >= MIN_SEPARATION
        assert abs(lay.block_yaw) <= np.pi / 4


def _settle(model: mujoco.MjModel, data: mujoco.MjData, seconds: float) -> None:
    for _ in range(int(seconds / model.opt.timestep)):
        mujoco.mj_step(model, data)


def test_success_needs_the_block_resting_inside_the_circle(model):
    task = BlockInCircle(model, JAW_PAD_GEOMS)
    data = mujoco.MjData(model)
    outside = Layout(block_xy=(0.2, 0.1), block_yaw=0.3, target_xy=(0.2, -0.1))
    task.apply(data, outside)
    _settle(model, data, 0.5)
    state = task.state(data)
    np.testing.assert_allclose(state.block_position, [0.2, 0.1, BLOCK_HALF], atol=2e-3)
    np.testing.assert_allclose(state.target_xy, [0.2, -0.1])
    assert state.resting and not state.inside and not state.held and not state.success

    edge = Layout(block_xy=(0.2, -0.1 + 0.9 * CIRCLE_RADIUS), block_yaw=0.0, target_xy=(0.2, -0.1))
    task.apply(data, edge)
    _settle(model, data, 0.5)
    assert task.state(data).success

    task.apply(data, Layout(block_xy=(0.2, -0.1 + 1.2 * CIRCLE_RADIUS), block_yaw=0.0, target_xy=(0.2, -0.1)))
    _settle(model, data, 0.5)
    assert not task.state(data).success

    task.apply(data, Layout(block_xy=(0.2, -0.1), block_yaw=0.0, target_xy=(0.2, -0.1)))
    data.qpos[task.qpos + 2] = 0.08  # dropped from above the circle: not resting until it lands
    mujoco.mj_forward(model, data)
    assert task.state(data).inside and not task.state(data).success
    _settle(model, data, 1.0)
    assert task.state(data).success


def test_a_scene_without_the_task_objects_is_refused(tmp_path):
    scene = tmp_path / "empty.xml"
    scene.write_text(
        '<mujoco><worldbody><frame name="arm_mount"/><camera name="front" pos="1 0 1"/></worldbody></mujoco>'
    )
    with pytest.raises(ValueError, match="no block-in-circle task objects"):
        BlockInCircle(build_model(scene))
