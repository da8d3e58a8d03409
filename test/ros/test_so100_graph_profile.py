"""The so100 profile's defaults and viewing nodes: the default checkpoint, auto arguments, RViz and its URDF."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml

from rynnvla_ros import default_model, topics
from rynnvla_ros.bringup import share_dir
from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.inference.robot_io import RobotIO
from rynnvla_ros.launch_builder import node_arguments, node_parameters
from rynnvla_ros.profiles import PACKAGE, get_profile

ROOT = Path(__file__).resolve().parents[2]


def test_sim_runs_the_default_model_with_executed_chunks_and_a_task():
    values = get_profile("so100").resolve({})
    assert values["checkpoint"] == str(default_model.default_checkpoint_dir())
    assert Path(values["checkpoint"]).is_dir() and values["task"] == default_model.DEFAULT_TASK
    assert (values["policy"], values["world_model"], values["dry_run"]) == ("true", "true", "false")
    names = [n.name for n in get_profile("so100").active_nodes(values)]
    assert names == ["so100_controller", "policy", "world_model", "chunk_visualizer"]


def test_real_hardware_runs_no_model_without_a_checkpoint_and_dry_runs_by_default(tmp_path):
    real = get_profile("so100").resolve({"hardware": "real"})
    assert (real["policy"], real["world_model"], real["checkpoint"], real["task"]) == ("false", "false", "", "")
    given = get_profile("so100").resolve({"hardware": "real", "checkpoint": str(tmp_path), "task": "x"})
    assert (given["policy"], given["dry_run"]) == ("true", "true")
    explicit = get_profile("so100").resolve({"hardware": "real", "checkpoint": str(tmp_path), "dry_run": "false"})
    assert explicit["dry_run"] == "false"
    off = get_profile("so100").resolve({"policy": "false", "world_model": "false"})
    assert [n.name for n in get_profile("so100").active_nodes(off)] == ["so100_controller", "chunk_visualizer"]
    with pytest.raises(ValueError, match="dry_run:=maybe is not one of auto, true, false"):
        get_profile("so100").resolve({"dry_run": "maybe"})


def test_the_default_checkpoint_is_installed_and_maps_the_so100_joints():
    from rynnvla_model.policy import RynnVLAPolicy

    installed = share_dir() / default_model.DEFAULT_CHECKPOINT
    assert (installed / "model.safetensors").is_file() and (ROOT / default_model.DEFAULT_CHECKPOINT).is_dir()
    io = RobotIO.load(installed)
    assert io == RobotIO.load(ROOT / default_model.DEFAULT_CHECKPOINT) and tuple(io.names) == desc.JOINT_NAMES
    policy = RynnVLAPolicy.from_pretrained(str(installed), device="cpu")
    assert policy.action_dim == 6 and policy.time_horizon * io.control_period >= 1.0  # 1 s plans: delays tolerated


def test_rviz_nodes_get_the_urdf_and_the_config():
    profile = get_profile("so100")
    values = profile.resolve({"rviz": "true"})
    active = {n.name: n for n in profile.active_nodes(values)}
    rsp, rviz = active["robot_state_publisher"], active["rviz2"]
    assert (rsp.package, rviz.package) == ("robot_state_publisher", "rviz2")
    (params,) = node_parameters(profile, rsp, values, str(share_dir() / "config"))
    urdf = params["robot_description"]
    assert "package://" not in urdf and f"file://{desc.arm_package_dir()}/" in urdf  # meshes RViz can load
    movable = {j.name for j in desc.parse_urdf(urdf).values() if j.type != "fixed"}
    assert movable == set(desc.JOINT_NAMES)  # the joint names of /joint_states
    assert ("joint_states", topics.JOINT_STATES) in rsp.remappings
    args = node_arguments(rviz, str(share_dir()))
    assert args[0] == "-d" and Path(args[1]).is_file()
    displays = yaml.safe_load(Path(args[1]).read_text())["Visualization Manager"]["Displays"]
    shown = {d.get("Topic", d.get("Description Topic", {})).get("Value") for d in displays}
    assert {topics.FRONT_IMAGE, topics.WRIST_IMAGE, topics.PREDICTED_FRONT_IMAGE, topics.PREDICTED_WRIST_IMAGE,
            topics.PLANNED_PATH, topics.ROBOT_DESCRIPTION} <= shown  # fmt: skip
    controller = active["so100_controller"]
    assert node_parameters(profile, controller, values, "/c")[1]["hardware"] == "sim"  # typed argument values


def test_bringup_skips_nodes_of_other_packages_with_a_log_line(start_process):
    bringup = Path(sys.executable).parent / "rynnvla-bringup"
    proc = start_process(bringup, "so100", "rviz:=true", "policy:=false", "world_model:=false")
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("running" in line for line in lines):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    time.sleep(3.0)  # let it spin before stopping it (a SIGTERM before the executor spins is not handled)
    proc.terminate()
    out = "".join(lines) + proc.communicate(timeout=30)[0]
    for name in ("robot_state_publisher", "rviz2"):
        assert f"skipping {name} ({name} {name}): not part of {PACKAGE} and not on PyPI" in out, out
    assert "running so100_controller, chunk_visualizer" in out
