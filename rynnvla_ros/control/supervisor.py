"""Keeps a :class:`~rynnvla_ros.control.backend.Backend` connected: connects in a background thread, retries every
``retry_period`` seconds with a clear logged error, and drops the connection after ``max_read_failures`` failed reads
in a row (a dead bus) so that it is opened again. Reads and writes never raise: they return None / False instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from rynnvla_ros.control.backend import Backend, BackendError, JointReading

REPEAT_LOG_PERIOD = 30.0  # s between two log lines of the same connection error


class Logger(Protocol):
    """What is needed of a logger (rclpy's and the logging module's both fit)."""

    def info(self, msg: str) -> object: ...
    def warning(self, msg: str) -> object: ...
    def error(self, msg: str) -> object: ...


class BackendSupervisor:
    """Owns a backend's connection (see the module docstring)."""

    def __init__(
        self,
        backend: Backend,
        logger: Logger,
        retry_period: float = 1.0,
        max_read_failures: int = 5,
        on_connect: Callable[[Backend], None] | None = None,
    ) -> None:
        if retry_period <= 0 or max_read_failures < 1:
            raise ValueError("retry_period must be > 0 s and max_read_failures >= 1")
        self.backend, self.log = backend, logger
        self.retry_period, self.max_read_failures = retry_period, max_read_failures
        self.on_connect = on_connect
        self.attempts = 0
        self.read_failures = 0  # in a row
        self.total_read_failures = 0
        self.last_error = ""
        self._connected = False
        self._io = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_logged = ("", -np.inf)

    @property
    def connected(self) -> bool:
        """Whether the backend is open (reads and writes go through)."""
        return self._connected

    @property
    def status(self) -> str:
        """One line for diagnostics."""
        if self._connected:
            return "connected"
        return f"connecting (attempt {self.attempts}): {self.last_error}" if self.last_error else "connecting"

    def start(self) -> None:
        """Start connecting in the background."""
        self._thread = threading.Thread(target=self._run, name=f"{self.backend.name}-connect", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop retrying and close the backend."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        with self._io:
            self._connected = False
            self.backend.close()

    def read(self) -> JointReading | None:
        """A joint reading, or None when not connected or the read failed."""
        if not self._connected:
            return None
        with self._io:
            try:
                reading = self.backend.read()
            except BackendError as exc:
                self.read_failures += 1
                self.total_read_failures += 1
                self.last_error = str(exc)
                if self.read_failures >= self.max_read_failures:
                    self.log.error(f"{exc}; {self.read_failures} failed reads in a row: reconnecting")
                    self._drop()
                else:
                    self.log.warning(f"{exc} ({self.read_failures} in a row)")
                return None
        self.read_failures = 0
        return reading

    def write(self, positions: np.ndarray) -> bool:
        """Send targets; False when not connected or the write failed."""
        if not self._connected:
            return False
        with self._io:
            try:
                self.backend.write(positions)
            except BackendError as exc:
                self.last_error = str(exc)
                self.log.warning(str(exc))
                return False
        return True

    def _drop(self) -> None:
        self._connected = False
        self.backend.close()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._connected:
                self._wake.wait()
                self._wake.clear()
                continue
            self.attempts += 1
            try:
                self.backend.connect()
            except Exception as exc:  # BackendError, or anything a driver raises: never kill the node
                self.last_error = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
                self._log_failure()
                self._stop.wait(self.retry_period)
                continue
            if self._stop.is_set():
                self.backend.close()
                return
            self.read_failures = 0
            self._connected = True
            after = f" after {self.attempts} attempts" if self.attempts > 1 else ""
            self.log.info(f"{self.backend.name} arm connected{after}")
            self.attempts = 0
            if self.on_connect is not None:
                try:
                    self.on_connect(self.backend)
                except Exception as exc:
                    self.log.error(f"after connecting: {type(exc).__name__}: {exc}")

    def _log_failure(self) -> None:
        message, when = self._last_logged
        now = time.monotonic()
        if self.last_error != message or now - when >= REPEAT_LOG_PERIOD:
            self.log.error(f"{self.last_error}; retrying every {self.retry_period:g} s (attempt {self.attempts})")
            self._last_logged = (self.last_error, now)
