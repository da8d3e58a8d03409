"""The MuJoCo twin: scene composition, mesh simplification, real-time stepping, actuators and cameras."""

import threading
import time

import mujoco
import numpy as np
import pytest

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.backend import BackendError
from rynnvla_ros.control.sim_backend import ARM_PREFIX, SimBackend, SimConfig, build_model, simplify_mesh


def test_scene_has_the_arm_cameras_and_table():
    model = build_model()
    for name in desc.JOINT_NAMES:
        assert model.actuator(ARM_PREFIX + name).trntype == mujoco.mjtTrn.mjTRN_JOINT
    assert {model.camera(i).name for i in range(model.ncam)} >= set(desc.CAMERAS)
    assert model.geom("table").size[2] > 0
    # the arm's base sits on the table top at the mount frame
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    np.testing.assert_allclose(data.body(ARM_PREFIX + "base").xpos, 0.0, atol=1e-12)


def test_mesh_simplification_keeps_the_shape_and_drops_most_triangles():
    full, simple = build_model(mesh_simplify=0.0), build_model(mesh_simplify=0.001)
    assert simple.mesh_facenum.sum() < full.mesh_facenum.sum() / 5
    for i in range(full.nmesh):  # mesh sizes agree to about the clustering cell
        np.testing.assert_allclose(simple.geom_rbound[simple.geom_dataid == i].max(),
                                   full.geom_rbound[full.geom_dataid == i].max(), atol=0.002)  # fmt: skip
    # a unit cube's corners in 1 m cells survive as they are, its 12 triangles too
    cube = np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T.astype(float) + 0.5
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1), (2, 3, 7), (2, 7, 6), (0, 2, 6),
             (0, 6, 4), (1, 5, 7), (1, 7, 3)]  # fmt: skip
    v, f = simplify_mesh(cube[np.array(faces).ravel()], 1.0)
    assert len(v) == 8 and len(f) == 12
    v, f = simplify_mesh(cube[np.array(faces).ravel()], 10.0)  # all in one cell: nothing left to draw
    assert len(v) == 1 and len(f) == 0


def test_a_scene_without_the_mount_frame_is_refused(tmp_path):
    scene = tmp_path / "bad.xml"
    scene.write_text("<mujoco><worldbody><geom type='plane' size='1 1 1'/></worldbody></mujoco>")
    with pytest.raises(BackendError, match="no frame named 'arm_mount'"):
        build_model(scene)


@pytest.fixture
def sim():
    backend = SimBackend(SimConfig(image_width=96, image_height=64, camera_rate=10.0))
    backend.connect()
    yield backend
    backend.close()


def test_physics_follows_wall_time_and_actuators_reach_targets(sim):
    np.testing.assert_allclose(sim.read().positions, desc.REST_POSITIONS, atol=0.05)
    target = np.array([0.4, -0.8, 0.9, 0.3, -0.5, 1.0])
    sim.write(target)
    start_wall, start_sim = time.monotonic(), sim.data.time
    time.sleep(1.5)
    elapsed_wall, elapsed_sim = time.monotonic() - start_wall, sim.data.time - start_sim
    assert elapsed_sim == pytest.approx(elapsed_wall, abs=0.15), "physics is not real time"
    reading = sim.read()
    np.testing.assert_allclose(reading.positions, target, atol=0.05)
    assert np.abs(reading.velocities).max() < 0.1 and reading.efforts.shape == (6,)
    sim.write(np.full(6, 10.0))  # beyond the actuators' ranges: clamped, not an error
    np.testing.assert_array_less(sim.data.ctrl, 10.0)


def test_cameras_render_front_and_wrist_views_at_the_rate(sim):
    got: list[tuple[dict, float]] = []
    enough = threading.Event()

    def on_frames(frames, stamp):
        got.append((frames, stamp))
        if len(got) >= 12:
            enough.set()

    sim.start_cameras(on_frames)
    assert enough.wait(10.0), f"{len(got)} frame pairs in 10 s"
    frames, _ = got[-1]
    assert set(frames) == set(desc.CAMERAS)
    for img in frames.values():
        assert img.shape == (64, 96, 3) and img.dtype == np.uint8 and img.std() > 5  # not a blank image
    assert not np.array_equal(frames["front"], frames["wrist"])
    stamps = np.array([s for _, s in got[2:]])
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 7.0 < rate < 11.0, f"cameras at {rate:.1f} Hz, asked for 10"
    before = got[-1][0]["wrist"]
    sim.write(np.array([1.0, -0.5, 0.5, 0.0, 1.5, 1.5]))  # the wrist view moves with the arm
    time.sleep(1.5)
    assert np.abs(got[-1][0]["wrist"].astype(int) - before).mean() > 5
    fx, fy, cx, cy = sim.intrinsics("front")
    assert fx == fy > 0 and (cx, cy) == (48.0, 32.0)
