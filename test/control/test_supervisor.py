"""The supervisor retries a dead arm with a clear log, never raises, and reconnects after repeated read failures."""

import logging
import threading
import time

import numpy as np
from conftest import wait_for

from rynnvla_ros.control.backend import Backend, BackendError, JointReading
from rynnvla_ros.control.supervisor import BackendSupervisor


class FlakyArm(Backend):
    """Fails to connect ``fail_connects`` times, then reads fail while ``reads_fail`` is set."""

    name = "flaky"

    def __init__(self, fail_connects: int) -> None:
        self.fail_connects = fail_connects
        self.connects = self.closes = 0
        self.reads_fail = False
        self.written: list[np.ndarray] = []
        self._open = False

    @property
    def connected(self) -> bool:
        return self._open

    def connect(self) -> None:
        self.connects += 1
        if self.connects <= self.fail_connects:
            raise BackendError("bus on /dev/ttyX does not answer")
        self._open = True

    def read(self) -> JointReading:
        if self.reads_fail:
            raise BackendError("Failed to sync read 'Present_Position'")
        return JointReading(np.zeros(6))

    def write(self, positions: np.ndarray) -> None:
        self.written.append(np.asarray(positions))

    def close(self) -> None:
        self.closes += 1
        self._open = False


def test_retries_until_connected_then_reconnects_after_failed_reads(caplog):
    arm = FlakyArm(fail_connects=3)
    connected = threading.Event()
    sup = BackendSupervisor(
        arm, logging.getLogger("test.arm"), retry_period=0.05, max_read_failures=3, on_connect=lambda b: connected.set()
    )
    caplog.set_level(logging.INFO, "test.arm")
    assert sup.read() is None and not sup.write(np.ones(6))  # nothing goes through before the connection
    sup.start()
    try:
        assert connected.wait(5.0)
        assert arm.connects == 4 and arm.written == []
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        # one line for the repeated error, naming it and the retry period
        assert errors == ["bus on /dev/ttyX does not answer; retrying every 0.05 s (attempt 1)"]
        assert any("flaky arm connected after 4 attempts" in r.getMessage() for r in caplog.records)
        assert sup.read() is not None and sup.write(np.ones(6)) and len(arm.written) == 1

        arm.reads_fail = True
        assert [sup.read() for _ in range(2)] == [None, None] and sup.connected  # a few failures are tolerated
        assert sup.read() is None and not sup.connected and arm.closes == 1  # the third drops the connection
        assert "reconnecting" in caplog.records[-1].getMessage()
        arm.reads_fail = False
        assert wait_for(lambda: sup.connected) and arm.connects == 5
        assert sup.total_read_failures == 3 and sup.read_failures == 0
    finally:
        sup.stop()
    assert not sup.connected and arm.closes >= 2


def test_status_while_failing():
    arm = FlakyArm(fail_connects=1000)
    sup = BackendSupervisor(arm, logging.getLogger("test.arm2"), retry_period=0.02)
    sup.start()
    try:
        assert wait_for(lambda: arm.connects >= 3)
        assert sup.status.startswith("connecting (attempt") and "does not answer" in sup.status
    finally:
        sup.stop()
    count = arm.connects
    time.sleep(0.1)
    assert arm.connects == count  # stopped retrying
