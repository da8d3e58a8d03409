"""LeRobot units <-> radians, checked against LeRobot's own tick normalization, and the backend without an arm."""

import json
import math
import time

import numpy as np
import pytest

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.backend import BackendError
from rynnvla_ros.control.lerobot_backend import LeRobotBackend, LeRobotConfig, UnitConversion

LO, HI = desc.joint_limits().lower[5], desc.joint_limits().upper[5]


def write_calibration(folder, robot_id="arm", lo=1000, hi=3000) -> None:
    cal = {n: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": lo, "range_max": hi}
           for i, n in enumerate(desc.JOINT_NAMES)}  # fmt: skip
    (folder / f"{robot_id}.json").write_text(json.dumps(cal))


def test_degrees_and_gripper_percent_to_radians_and_back():
    units = UnitConversion()
    assert units.gripper_range == (LO, HI)  # the URDF's gripper limits by default
    lerobot = {"shoulder_pan": 90.0, "shoulder_lift": -45.0, "elbow_flex": 0.0, "wrist_flex": 180.0,
               "wrist_roll": -30.0, "gripper": 50.0}  # fmt: skip
    q = units.to_radians(lerobot)
    np.testing.assert_allclose(q[:5], [math.pi / 2, -math.pi / 4, 0.0, math.pi, -math.pi / 6])
    assert q[5] == pytest.approx((LO + HI) / 2)
    assert units.to_radians({**lerobot, "gripper": 0.0})[5] == pytest.approx(LO)  # 0 % = closed = lower limit
    assert units.to_radians({**lerobot, "gripper": 100.0})[5] == pytest.approx(HI)
    back = units.to_lerobot(q)
    assert back == pytest.approx(lerobot)
    assert units.to_lerobot([0, 0, 0, 0, 0, HI + 1.0])["gripper"] == 100.0  # clipped to LeRobot's range
    assert units.to_lerobot([0, 0, 0, 0, 0, LO - 1.0])["gripper"] == 0.0
    with pytest.raises(KeyError, match="gripper"):
        units.to_radians({k: v for k, v in lerobot.items() if k != "gripper"})


def test_directions_and_offsets():
    units = UnitConversion(gripper_range=(0.0, 1.0), directions=(1, -1, 1, 1, 1, 1), offsets=(0.1, 0, 0, 0, 0, 0))
    q = units.to_radians({n: 10.0 for n in desc.JOINT_NAMES})
    assert q[0] == pytest.approx(math.radians(10) + 0.1) and q[1] == pytest.approx(-math.radians(10))
    assert units.to_lerobot(q) == pytest.approx({n: 10.0 for n in desc.JOINT_NAMES})
    for bad in ({"directions": (1, 1, 1, 1, 1, 0.5)}, {"offsets": (0,) * 5}, {"gripper_range": (1.0, 0.0)}):
        with pytest.raises(ValueError):
            UnitConversion(**bad)


def test_ticks_through_lerobots_normalization_give_the_expected_radians(tmp_path):
    """Raw encoder ticks -> LeRobot's SOFollower bus (use_degrees) -> our radians: 4095 ticks per turn."""
    from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig

    write_calibration(tmp_path, lo=1000, hi=3000)  # middle of the range: 2000 ticks
    robot = SOFollower(SOFollowerRobotConfig(port="/dev/null", id="arm", calibration_dir=tmp_path, use_degrees=True))
    raw = {1: 2000 + 1024, 2: 2000 - 512, 3: 2000, 4: 2000 + 100, 5: 2000 - 2000, 6: 1500}
    normalized = robot.bus._normalize(raw)
    values = {robot.bus._id_to_name(i): v for i, v in normalized.items()}
    q = UnitConversion().to_radians(values)
    per_tick = 2 * math.pi / 4095
    np.testing.assert_allclose(q[:5], np.array([1024, -512, 0, 100, -2000]) * per_tick, rtol=1e-12)
    assert q[5] == pytest.approx(LO + 0.25 * (HI - LO))  # 1500 is a quarter of the way from 1000 to 3000


def test_absent_port_is_a_clear_error_not_a_crash(tmp_path):
    write_calibration(tmp_path)
    config = LeRobotConfig(port=str(tmp_path / "ttyACM9"), robot_id="arm", calibration_dir=str(tmp_path))
    backend = LeRobotBackend(config)
    for _ in range(2):  # retrying is possible
        start = time.monotonic()
        with pytest.raises(BackendError, match=r"cannot open the SO100 bus on .*ttyACM9"):
            backend.connect()
        assert time.monotonic() - start < 10
    assert not backend.connected
    with pytest.raises(BackendError, match="not connected"):
        backend.read()
    with pytest.raises(BackendError, match="not connected"):
        backend.write(np.zeros(6))
    backend.close()


def test_missing_calibration_names_the_file_and_the_command(tmp_path):
    backend = LeRobotBackend(LeRobotConfig(port="/dev/ttyACM0", robot_id="nobody", calibration_dir=str(tmp_path)))
    with pytest.raises(BackendError, match=r"no calibration file .*nobody\.json.*lerobot-calibrate"):
        backend.connect()
