"""The ``record`` profile as shipped: ``rynnvla-bringup record hardware:=sim`` (MuJoCo twin with its cameras, the
leader teleop without a leader attached, the recorder) records an episode through the services."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_recorder_node import STORE, OutputDrain, RecorderClient, bag_topics, strings

from rynnvla_ros import topics


@pytest.mark.ros
@pytest.mark.sim
@pytest.mark.slow
def test_record_profile_records_an_episode_of_the_sim_graph(ros_context, start_process, tmp_path: Path) -> None:
    bringup = Path(sys.executable).parent / "rynnvla-bringup"
    proc = start_process(
        bringup,
        "record",
        "hardware:=sim",
        f"output_dir:={tmp_path / 'bags'}",
        f"leader_port:={tmp_path / 'ttyACM9'}",  # no leader: the teleop node retries, the rest records
        f"leader_calibration_dir:={tmp_path}",
        "task:=wave at the camera",
    )
    out = OutputDrain(proc)
    client = RecorderClient(ros_context)
    client.wait_ready(timeout=120)
    assert out.wait_for(f"recording {topics.FRONT_IMAGE}", 60) and out.wait_for(f"recording {topics.JOINT_STATES}", 30)
    response = client.start()  # the profile's task
    assert response.success, response.message + out.text
    bag = Path(response.bag_path)
    client.spin(3.0)
    response = client.stop()
    assert response.success, response.message
    assert proc.poll() is None
    assert f"saved to {bag}" in response.message
    recorded = bag_topics(bag)
    assert strings(recorded[topics.EPISODE]) == ["start:wave at the camera", "stop"]
    for topic in (topics.FRONT_IMAGE, topics.WRIST_IMAGE):
        assert len(recorded[topic]) >= 15, f"{topic}: {len(recorded.get(topic, []))} images in 3 s"
        assert STORE.deserialize_cdr(recorded[topic][0], "sensor_msgs/msg/Image").encoding == "rgb8"
    assert len(recorded[topics.JOINT_STATES]) >= 100
    assert "no leader calibration file" in out.text  # the teleop node's clear error, and it keeps retrying
