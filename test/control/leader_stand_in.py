"""A stand-in for LeRobot's SOLeader (its interface, no hardware) and helpers for the leader-arm tests."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.leader_arm import LeaderArm, LeaderConfig
from rynnvla_ros.control.lerobot_backend import UnitConversion

DEGREES = {"shoulder_pan": 10.0, "shoulder_lift": -20.0, "elbow_flex": 15.0, "wrist_flex": 5.0, "wrist_roll": 0.0}
GRIPPER_PCT = 50.0


def write_calibration(folder: Path, name: str, lo: int = 1000, hi: int = 3000) -> None:
    cal = {n: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": lo, "range_max": hi}
           for i, n in enumerate(desc.JOINT_NAMES)}  # fmt: skip
    (folder / f"{name}.json").write_text(json.dumps(cal))


class StandInBus:
    """What LeRobot's bus offers that the arm's closing uses."""

    def __init__(self) -> None:
        self.is_connected = False
        self.port_handler = self

    def closePort(self) -> None:  # scservo_sdk's name
        self.is_connected = False


class StandInLeader:
    """An object with SOLeader's interface (connect, is_calibrated, get_action, disconnect) and no hardware.

    ``fail_connects`` connection attempts raise ConnectionError first; ``action`` is what get_action returns.
    """

    def __init__(self, fail_connects: int = 0, calibrated: bool = True) -> None:
        self.bus = StandInBus()
        self.fail_connects, self.calibrated = fail_connects, calibrated
        self.connect_times: list[float] = []
        self.action: dict | Exception = {f"{k}.pos": v for k, v in DEGREES.items()} | {"gripper.pos": GRIPPER_PCT}
        self.allow = threading.Event()
        self.allow.set()

    @property
    def is_connected(self) -> bool:
        return self.bus.is_connected

    @property
    def is_calibrated(self) -> bool:
        return self.calibrated

    def connect(self, calibrate: bool = True) -> None:
        assert calibrate is False  # never LeRobot's interactive calibration
        self.connect_times.append(time.monotonic())
        if len(self.connect_times) <= self.fail_connects or not self.allow.is_set():
            raise ConnectionError("Could not connect on port '/dev/ttyACM9'. Make sure you are using the correct port.")
        self.bus.is_connected = True

    def get_action(self) -> dict:
        if isinstance(self.action, Exception):
            raise self.action
        return dict(self.action)

    def disconnect(self) -> None:
        self.bus.is_connected = False


def expected_radians() -> np.ndarray:
    return UnitConversion().to_radians(DEGREES | {"gripper": GRIPPER_PCT})


def arm_with(device: StandInLeader, tmp_path: Path) -> LeaderArm:
    write_calibration(tmp_path, "leader")
    return LeaderArm(LeaderConfig(port="/dev/ttyACM9", leader_id="leader", calibration_dir=str(tmp_path)),
                     make_device=lambda _cfg, _dir: device)  # fmt: skip
