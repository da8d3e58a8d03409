"""The real SO100/SO101 follower arm through LeRobot's ``SOFollower`` (Feetech STS3215 bus).

LeRobot reports and takes joint positions in its own units: with ``use_degrees=True`` (LeRobot's default, which this
backend requires) the five arm joints are degrees from the middle of their calibrated range and the gripper is
0 (closed) .. 100 (open) percent of its calibrated range. :class:`UnitConversion` maps them to the URDF's radians
and back: ``rad = direction * radians(deg) + offset`` for the arm joints and ``rad = lo + pct / 100 * (hi - lo)``
for the gripper, with ``(lo, hi)`` the gripper's URDF limits by default.

The arm is never calibrated interactively here: the calibration file ``<calibration_dir>/<robot_id>.json`` written
by ``lerobot-calibrate`` must exist and match the motors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.backend import Backend, BackendError, JointReading

log = logging.getLogger(__name__)

NEEDS_LEROBOT = "LeRobot with the Feetech driver is needed (pip install 'lerobot[feetech]')"


def _default_gripper_range() -> tuple[float, float]:
    limits = desc.joint_limits()
    i = desc.JOINT_NAMES.index(desc.GRIPPER)
    return float(limits.lower[i]), float(limits.upper[i])


@dataclass(frozen=True)
class UnitConversion:
    """LeRobot units (degrees, gripper percent) <-> radians, in JOINT_NAMES order."""

    gripper_range: tuple[float, float] = field(default_factory=_default_gripper_range)
    directions: tuple[float, ...] = (1.0,) * desc.N_JOINTS
    offsets: tuple[float, ...] = (0.0,) * desc.N_JOINTS

    def __post_init__(self) -> None:
        if len(self.directions) != desc.N_JOINTS or any(d not in (1.0, -1.0) for d in self.directions):
            raise ValueError(f"joint_directions needs {desc.N_JOINTS} values of 1 or -1, got {list(self.directions)}")
        if len(self.offsets) != desc.N_JOINTS:
            raise ValueError(f"joint_offsets needs {desc.N_JOINTS} values, got {list(self.offsets)}")
        lo, hi = self.gripper_range
        if not hi > lo:
            raise ValueError(f"gripper_range must be (closed, open) with open > closed, got {self.gripper_range}")

    def to_radians(self, values: Mapping[str, float]) -> np.ndarray:
        """``{"shoulder_pan": deg, ..., "gripper": pct}`` -> radians."""
        missing = [n for n in desc.JOINT_NAMES if n not in values]
        if missing:
            raise KeyError(f"LeRobot reading lacks joint(s) {', '.join(missing)}")
        lo, hi = self.gripper_range
        base = np.array(
            [
                lo + float(values[n]) / 100.0 * (hi - lo) if n == desc.GRIPPER else np.radians(float(values[n]))
                for n in desc.JOINT_NAMES
            ]
        )
        return np.asarray(self.directions) * base + np.asarray(self.offsets)

    def to_lerobot(self, positions: Sequence[float]) -> dict[str, float]:
        """Radians -> ``{"shoulder_pan": deg, ..., "gripper": pct}`` (gripper clipped to 0..100)."""
        base = (np.asarray(positions, dtype=float) - np.asarray(self.offsets)) * np.asarray(self.directions)
        lo, hi = self.gripper_range
        out = {}
        for name, value in zip(desc.JOINT_NAMES, base, strict=True):
            if name == desc.GRIPPER:
                out[name] = float(np.clip((value - lo) / (hi - lo) * 100.0, 0.0, 100.0))
            else:
                out[name] = float(np.degrees(value))
        return out


@dataclass(frozen=True)
class LeRobotConfig:
    """Settings of :class:`LeRobotBackend` (node parameters of the same names)."""

    port: str = "/dev/ttyACM0"
    robot_id: str = "so100_follower"
    calibration_dir: str = ""  # empty: LeRobot's default (~/.cache/huggingface/lerobot/calibration/robots/so_follower)
    num_read_retries: int = 2
    disable_torque_on_close: bool = True
    units: UnitConversion = field(default_factory=UnitConversion)


class LeRobotBackend(Backend):
    """SO100/SO101 follower on a Feetech bus, through LeRobot 0.6's ``SOFollower``."""

    name = "lerobot"

    def __init__(self, config: LeRobotConfig | None = None) -> None:
        self.config = config or LeRobotConfig()
        self.robot = None

    @property
    def connected(self) -> bool:
        return self.robot is not None and self.robot.is_connected

    def calibration_file(self) -> Path:
        """Where the calibration of ``robot_id`` is read from."""
        if self.config.calibration_dir:
            return Path(self.config.calibration_dir).expanduser() / f"{self.config.robot_id}.json"
        from lerobot.robots.so_follower import SOFollower
        from lerobot.utils.constants import HF_LEROBOT_CALIBRATION, ROBOTS

        return HF_LEROBOT_CALIBRATION / ROBOTS / SOFollower.name / f"{self.config.robot_id}.json"

    def connect(self) -> None:
        cfg = self.config
        self.robot = connect_feetech(
            self.calibration_file,
            lambda calibration_dir: lerobot_follower(cfg, calibration_dir),
            cfg.port,
            who="",
            calibrate_hint=f"calibrate the arm once with `lerobot-calibrate --robot.type=so101_follower "
            f"--robot.port={cfg.port} --robot.id={cfg.robot_id}`",
            bus_hint="also check the USB cable, the arm's power supply and the device's permissions",
            recalibrate_hint=f"`lerobot-calibrate` (robot id {cfg.robot_id}) or point calibration_dir/robot_id at the "
            f"right file",
        )
        log.info("connected to the SO follower on %s with calibration %s", cfg.port, self.robot.calibration_fpath)

    def read(self) -> JointReading:
        if not self.connected:
            raise BackendError("arm not connected")
        try:
            obs = self.robot.get_observation()
        except Exception as exc:
            raise BackendError(f"failed to read the joint positions: {' '.join(str(exc).split())}") from exc
        values = {k.removesuffix(".pos"): v for k, v in obs.items() if k.endswith(".pos")}
        return JointReading(self.config.units.to_radians(values))

    def write(self, positions: np.ndarray) -> None:
        if not self.connected:
            raise BackendError("arm not connected")
        action = {f"{k}.pos": v for k, v in self.config.units.to_lerobot(positions).items()}
        try:
            self.robot.send_action(action)
        except Exception as exc:
            raise BackendError(f"failed to send the joint targets: {' '.join(str(exc).split())}") from exc

    def close(self) -> None:
        if self.robot is not None:
            quiet_disconnect(self.robot)
            self.robot = None


def lerobot_follower(config: LeRobotConfig, calibration_dir: Path) -> object:
    """LeRobot's SO100/SO101 follower robot for ``config`` (not connected)."""
    from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig

    return SOFollower(
        SOFollowerRobotConfig(
            port=config.port,
            id=config.robot_id,
            calibration_dir=calibration_dir,
            use_degrees=True,
            disable_torque_on_disconnect=config.disable_torque_on_close,
            num_read_retries=config.num_read_retries,
        )
    )


def connect_feetech(
    calibration_file: Callable[[], Path],
    make_device: Callable[[Path], object],
    port: str,
    *,
    who: str,
    calibrate_hint: str,
    bus_hint: str,
    recalibrate_hint: str,
) -> object:
    """A LeRobot Feetech device (follower or leader arm) built by ``make_device(<calibration file's folder>)`` and
    connected without the interactive calibration; BackendError saying what failed and what to check.

    The calibration file must exist and match the motors; on any failure the device's port is released. ``who``
    ("" or "leader ") names the device in the errors; the hints say how to calibrate it, what to check when its bus
    does not open and how to recalibrate or point at the right calibration file.
    """
    try:
        calibration = calibration_file()
        if not calibration.is_file():
            raise BackendError(f"no {who}calibration file {calibration}; {calibrate_hint}")
        device = make_device(calibration.parent)
    except ImportError as exc:
        raise BackendError(f"{NEEDS_LEROBOT}: {exc}") from exc
    try:
        device.connect(calibrate=False)  # never the interactive calibration
    except Exception as exc:
        quiet_disconnect(device)
        detail = " ".join(str(exc).split())
        raise BackendError(f"cannot open the SO100 {who}bus on {port}: {detail} ({bus_hint})") from exc
    try:
        calibrated = device.is_calibrated
    except Exception as exc:
        quiet_disconnect(device)
        raise BackendError(f"cannot read the {who}motors' calibration on {port}: {exc}") from exc
    if not calibrated:
        quiet_disconnect(device)
        raise BackendError(
            f"the {who}motors' calibration differs from {calibration}; recalibrate with {recalibrate_hint}"
        )
    return device


def quiet_disconnect(robot) -> None:
    """Disconnect, and at least close the serial port when the bus does not answer."""
    try:
        if robot.bus.is_connected:
            robot.disconnect()
    except Exception as exc:  # a dead bus cannot disable torque; release the port anyway
        log.debug("disconnect failed: %s", exc)
        try:
            robot.bus.port_handler.closePort()
        except Exception as close_exc:
            log.debug("closing the port failed: %s", close_exc)
