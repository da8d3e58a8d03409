"""The leader arm: LeRobot's SOLeader units become the follower's radians, a missing bus is a clear error, and the
reading thread retries with backoff and never delivers before a reading (the bus is a stand-in object here)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest
from leader_stand_in import StandInLeader, arm_with, expected_radians, write_calibration

from rynnvla_ros.control.backend import BackendError
from rynnvla_ros.control.leader_arm import LeaderArm, LeaderConfig, LeaderLink, LinkConfig
from rynnvla_ros.control.lerobot_backend import UnitConversion


def test_leader_and_follower_ticks_mean_the_same_radians(tmp_path: Path) -> None:
    """LeRobot's SOLeader and SOFollower normalize the same ticks to the same degrees, so the follower's
    UnitConversion gives the leader's radians (4095 ticks per turn)."""
    from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig
    from lerobot.teleoperators.so_leader import SOLeader, SOLeaderTeleopConfig

    write_calibration(tmp_path, "arm")
    leader = SOLeader(SOLeaderTeleopConfig(port="/dev/null", id="arm", calibration_dir=tmp_path, use_degrees=True))
    follower = SOFollower(SOFollowerRobotConfig(port="/dev/null", id="arm", calibration_dir=tmp_path, use_degrees=True))
    raw = {1: 2000 + 1024, 2: 2000 - 512, 3: 2000, 4: 2100, 5: 0, 6: 1500}
    lead = {leader.bus._id_to_name(i): v for i, v in leader.bus._normalize(raw).items()}
    follow = {follower.bus._id_to_name(i): v for i, v in follower.bus._normalize(raw).items()}
    assert lead == pytest.approx(follow)
    q = UnitConversion().to_radians(lead)
    np.testing.assert_allclose(q[:5], np.array([1024, -512, 0, 100, -2000]) * 2 * math.pi / 4095, rtol=1e-12)


def test_an_absent_bus_is_a_clear_error_and_can_be_retried(tmp_path: Path) -> None:
    write_calibration(tmp_path, "leader")
    port = tmp_path / "ttyACM9"
    arm = LeaderArm(LeaderConfig(port=str(port), leader_id="leader", calibration_dir=str(tmp_path)))  # LeRobot's
    for _ in range(2):
        start = time.monotonic()
        with pytest.raises(BackendError, match=r"cannot open the SO100 leader bus on .*ttyACM9.*check the USB cable"):
            arm.connect()
        assert time.monotonic() - start < 10
    assert not arm.connected
    with pytest.raises(BackendError, match="leader arm not connected"):
        arm.read()
    arm.close()


def test_missing_calibration_names_the_file_and_the_command(tmp_path: Path) -> None:
    arm = LeaderArm(LeaderConfig(leader_id="nobody", calibration_dir=str(tmp_path)))
    with pytest.raises(BackendError, match=r"no leader calibration file .*nobody\.json.*lerobot-calibrate --teleop"):
        arm.connect()


def test_readings_are_radians_and_bad_readings_are_errors(tmp_path: Path) -> None:
    device = StandInLeader()
    arm = arm_with(device, tmp_path)
    arm.connect()
    assert arm.connected
    np.testing.assert_allclose(arm.read(), expected_radians())
    device.action = {**device.action, "elbow_flex.pos": float("nan")}
    with pytest.raises(BackendError, match="non-finite leader reading"):
        arm.read()
    device.action = {"shoulder_pan.pos": 1.0}
    with pytest.raises(BackendError, match=r"unusable leader reading.*lacks joint"):
        arm.read()
    device.action = RuntimeError("Incorrect status packet!")
    with pytest.raises(BackendError, match="failed to read the leader's positions: Incorrect status packet!"):
        arm.read()
    arm.close()
    assert not arm.connected and not device.bus.is_connected

    uncalibrated = StandInLeader(calibrated=False)
    arm = arm_with(uncalibrated, tmp_path)
    with pytest.raises(BackendError, match="calibration differs"):
        arm.connect()
    assert not uncalibrated.bus.is_connected  # the port is released


def test_the_link_retries_with_backoff_and_delivers_only_readings(tmp_path: Path, caplog) -> None:
    device = StandInLeader(fail_connects=4)
    arm = arm_with(device, tmp_path)
    readings: list[tuple[np.ndarray, int]] = []
    link = LeaderLink(
        arm,
        LinkConfig(rate=50.0, retry_period=0.05, max_retry_period=0.2, max_read_failures=3),
        lambda q, t: readings.append((q, t)),
        logging.getLogger("leader-test"),
    )
    with caplog.at_level(logging.INFO, logger="leader-test"):
        link.start()
        deadline = time.monotonic() + 20
        while len(readings) < 10 and time.monotonic() < deadline:
            assert readings or not arm.connected or len(device.connect_times) == 5
            time.sleep(0.01)
        link.stop()
    assert len(device.connect_times) == 5 and len(readings) >= 10
    gaps = np.diff(device.connect_times)
    assert np.all(gaps >= np.array([0.05, 0.1, 0.2, 0.2]) * 0.9), gaps  # 0.05 s doubling, capped at 0.2 s
    errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot open the SO100 leader bus on /dev/ttyACM9" in errors[0]  # once, not 4x
    assert "retrying in 0.05 s, then up to every 0.2 s (attempt 1)" in errors[0]
    assert any("connected on /dev/ttyACM9 after 5 attempts" in r.message for r in caplog.records)
    assert link.status == "stopped" and not arm.connected
    for q, wall_ns in readings:
        np.testing.assert_allclose(q, expected_radians())
        assert abs(wall_ns - time.time_ns()) < 60e9


def test_the_link_reconnects_after_failed_reads_and_survives_its_callback(tmp_path: Path, caplog) -> None:
    device = StandInLeader()
    arm = arm_with(device, tmp_path)
    calls = {"n": 0}

    def callback(_q, _t) -> None:
        calls["n"] += 1
        raise ValueError("publisher gone")

    link = LeaderLink(arm, LinkConfig(rate=100.0, retry_period=0.05, max_read_failures=3), callback,
                      logging.getLogger("leader-test2"))  # fmt: skip
    with caplog.at_level(logging.INFO, logger="leader-test2"):
        link.start()
        deadline = time.monotonic() + 20
        while calls["n"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        good = device.action
        device.action = RuntimeError("bus timeout")
        while len(device.connect_times) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        device.action = good
        n = calls["n"]
        while calls["n"] < n + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        link.stop()
    assert len(device.connect_times) >= 2 and calls["n"] >= n + 3  # reopened, reading again
    assert link.total_read_failures >= 3
    messages = [r.message for r in caplog.records]
    assert any("3 failed reads in a row: reconnecting" in m for m in messages)
    assert any("handling a leader reading failed: ValueError: publisher gone" in m for m in messages)
