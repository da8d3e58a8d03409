"""The SO100/SO101 leader arm (teleoperation) through LeRobot's ``SOLeader`` on its Feetech bus, read in radians.

:class:`LeaderArm` opens the leader with LeRobot 0.6's teleoperator classes (``use_degrees=True``, never the
interactive calibration: ``<calibration_dir>/<leader_id>.json`` written by ``lerobot-calibrate --teleop.type=
so101_leader`` must exist) and converts its readings with the follower's
:class:`~rynnvla_ros.control.lerobot_backend.UnitConversion`, so leader and follower positions mean the same radians.

:class:`LeaderLink` keeps it read: on its own thread it connects (a missing or failing bus is logged and retried with
exponential backoff), reads at ``rate`` Hz, hands every reading to a callback, and reconnects after
``max_read_failures`` failed reads in a row. Nothing is delivered before the first successful reading.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rynnvla_ros.control.backend import BackendError
from rynnvla_ros.control.lerobot_backend import UnitConversion, connect_feetech, quiet_disconnect
from rynnvla_ros.control.supervisor import REPEAT_LOG_PERIOD, Logger

ReadingCallback = Callable[[np.ndarray, int], None]
"""Receives joint positions (rad, JOINT_NAMES order) and the wall time of the reading (ns since the epoch)."""


@dataclass(frozen=True)
class LeaderConfig:
    """Settings of :class:`LeaderArm` (node parameters of the same names)."""

    port: str = "/dev/ttyACM1"
    leader_id: str = "so100_leader"
    calibration_dir: str = ""
    """Empty: LeRobot's default (~/.cache/huggingface/lerobot/calibration/teleoperators/so_leader)."""
    num_read_retries: int = 2
    units: UnitConversion = field(default_factory=UnitConversion)


def lerobot_leader(config: LeaderConfig, calibration_dir: Path) -> object:
    """LeRobot's SO100/SO101 leader teleoperator for ``config`` (not connected)."""
    from lerobot.teleoperators.so_leader import SOLeader, SOLeaderTeleopConfig

    return SOLeader(
        SOLeaderTeleopConfig(
            port=config.port,
            id=config.leader_id,
            calibration_dir=calibration_dir,
            use_degrees=True,
            num_read_retries=config.num_read_retries,
        )
    )


class LeaderArm:
    """An SO100/SO101 leader: connect, read positions in radians, close.

    ``make_device(config, calibration_dir)`` builds the LeRobot teleoperator (:func:`lerobot_leader` by default).
    """

    name = "so100_leader"

    def __init__(
        self,
        config: LeaderConfig | None = None,
        make_device: Callable[[LeaderConfig, Path], object] = lerobot_leader,
    ) -> None:
        self.config = config or LeaderConfig()
        self.make_device = make_device
        self.device = None

    @property
    def connected(self) -> bool:
        return self.device is not None and bool(self.device.is_connected)

    def calibration_file(self) -> Path:
        """Where the calibration of ``leader_id`` is read from."""
        if self.config.calibration_dir:
            return Path(self.config.calibration_dir).expanduser() / f"{self.config.leader_id}.json"
        from lerobot.teleoperators.so_leader import SOLeader
        from lerobot.utils.constants import HF_LEROBOT_CALIBRATION, TELEOPERATORS

        return HF_LEROBOT_CALIBRATION / TELEOPERATORS / SOLeader.name / f"{self.config.leader_id}.json"

    def connect(self) -> None:
        """Open the leader's bus; BackendError saying what failed and what to check."""
        cfg = self.config
        self.device = connect_feetech(
            self.calibration_file,
            lambda calibration_dir: self.make_device(cfg, calibration_dir),
            cfg.port,
            who="leader ",
            calibrate_hint=f"calibrate the leader once with `lerobot-calibrate --teleop.type=so101_leader "
            f"--teleop.port={cfg.port} --teleop.id={cfg.leader_id}`",
            bus_hint="check the USB cable, the leader's power supply and the device's permissions",
            recalibrate_hint=f"`lerobot-calibrate` (teleop id {cfg.leader_id}) or point calibration_dir/leader_id at "
            f"the right file",
        )

    def read(self) -> np.ndarray:
        """Joint positions in radians (JOINT_NAMES order); BackendError on a failed or unusable reading."""
        if not self.connected:
            raise BackendError("leader arm not connected")
        try:
            action = self.device.get_action()
        except Exception as exc:
            raise BackendError(f"failed to read the leader's positions: {' '.join(str(exc).split())}") from exc
        values = {k.removesuffix(".pos"): v for k, v in action.items() if k.endswith(".pos")}
        try:
            positions = self.config.units.to_radians(values)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(f"unusable leader reading {action}: {exc}") from exc
        if not np.all(np.isfinite(positions)):
            raise BackendError(f"non-finite leader reading {action}")
        return positions

    def close(self) -> None:
        """Release the bus (idempotent)."""
        if self.device is not None:
            quiet_disconnect(self.device)
            self.device = None


@dataclass(frozen=True)
class LinkConfig:
    """Timing of :class:`LeaderLink` (node parameters of the same names)."""

    rate: float = 50.0
    retry_period: float = 1.0
    """First delay between connection attempts; it doubles after every failure up to ``max_retry_period``."""
    max_retry_period: float = 10.0
    max_read_failures: int = 5

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.retry_period <= 0 or self.max_retry_period < self.retry_period:
            raise ValueError("rate and retry_period must be > 0 and max_retry_period >= retry_period")
        if self.max_read_failures < 1:
            raise ValueError("max_read_failures must be >= 1")


class LeaderLink:
    """Reads a :class:`LeaderArm` on a background thread; see the module docstring. Never raises into the caller."""

    def __init__(self, arm: LeaderArm, config: LinkConfig, on_reading: ReadingCallback, logger: Logger) -> None:
        self.arm, self.config, self.on_reading, self.log = arm, config, on_reading, logger
        self.attempts = 0
        """Connection attempts since the last success."""
        self.retry_delay = config.retry_period
        self.last_error = ""
        self.readings = 0
        self.read_failures = 0
        self.total_read_failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_logged = ("", -np.inf)

    @property
    def connected(self) -> bool:
        return self.arm.connected

    @property
    def status(self) -> str:
        """One line for diagnostics."""
        if self._stop.is_set():
            return "stopped"
        if self.arm.connected:
            return "connected"
        if not self.last_error:
            return "connecting"
        return f"connecting (attempt {self.attempts}, next in {self.retry_delay:g} s): {self.last_error}"

    def start(self) -> None:
        """Start connecting and reading in the background."""
        self._thread = threading.Thread(target=self._run, name="leader-arm", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and close the arm."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.arm.close()

    def _run(self) -> None:
        period = 1.0 / self.config.rate
        next_read = time.monotonic()
        while not self._stop.is_set():
            if not self.arm.connected and not self._connect():
                continue
            self._read_once()
            next_read = max(next_read + period, time.monotonic() - period)  # no burst after a stall
            self._stop.wait(max(0.0, next_read - time.monotonic()))

    def _connect(self) -> bool:
        self.attempts += 1
        try:
            self.arm.connect()
        except Exception as exc:  # BackendError, or anything a driver raises: never end the thread
            self.last_error = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
            self._log_failure()
            self._stop.wait(self.retry_delay)
            self.retry_delay = min(self.retry_delay * 2.0, self.config.max_retry_period)
            return False
        after = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        self.log.info(f"leader arm connected on {self.arm.config.port}{after}")
        self.attempts, self.retry_delay, self.read_failures, self.last_error = 0, self.config.retry_period, 0, ""
        return True

    def _read_once(self) -> None:
        try:
            positions = self.arm.read()
        except Exception as exc:
            self.read_failures += 1
            self.total_read_failures += 1
            self.last_error = str(exc)
            if self.read_failures >= self.config.max_read_failures:
                self.log.error(f"{exc}; {self.read_failures} failed reads in a row: reconnecting")
                self.arm.close()
            else:
                self.log.warning(f"{exc} ({self.read_failures} in a row)")
            return
        self.read_failures = 0
        self.readings += 1
        try:
            self.on_reading(positions, time.time_ns())
        except Exception as exc:  # a publishing problem must not stop the reading
            self.log.error(f"handling a leader reading failed: {type(exc).__name__}: {exc}")

    def _log_failure(self) -> None:
        message, when = self._last_logged
        now = time.monotonic()
        if self.last_error != message or now - when >= REPEAT_LOG_PERIOD:
            self.log.error(
                f"{self.last_error}; retrying in {self.retry_delay:g} s, then up to every "
                f"{self.config.max_retry_period:g} s (attempt {self.attempts})"
            )
            self._last_logged = (self.last_error, now)
