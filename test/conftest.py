"""Shared pytest set-up: isolate ROS traffic to this machine and keep tests offline and light on CPU threads."""

from __future__ import annotations

import os
import random

# Set before rclpy (or anything that may import it) is loaded: loopback-only discovery on a random domain, so
# that no test traffic leaves the machine and parallel runs do not see each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")
# numpy, OpenCV and SciPy each bring their own OpenBLAS with a pool of busy-waiting workers per core; in tests they
# only compete with the simulators, model threads and ROS executors of the same small machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import faulthandler
from collections.abc import Callable, Iterator

import pytest

try:
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
except ImportError:  # pragma: no cover - torch is a hard dependency, but keep ROS-only test runs possible
    torch = None


HANG_LIMIT_S = 720  # a test running this long is hung (pytest-timeout's 600 s could not stop it): end the run
_real_stderr: int | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Keep a handle on the real stderr (output capture is off while pytest configures)."""
    global _real_stderr
    _real_stderr = os.dup(2)


@pytest.fixture(autouse=True)
def _hang_guard() -> Iterator[None]:
    """Dump every thread's stack and exit when a test hangs past HANG_LIMIT_S. faulthandler works from a C thread,
    so it fires even when a native library holds the GIL (where pytest-timeout's signal handler never runs).
    Afterwards, fail a test that left real-time scheduling behind (SVT-AV1 run as root does that; every thread
    started later inherits it, and a busy one starves the machine: that hung whole CI runs)."""
    from rynnvla_model.data.lerobot_io import restore_normal_scheduling

    if _real_stderr is not None:
        faulthandler.dump_traceback_later(HANG_LIMIT_S, exit=True, file=_real_stderr)
    yield
    faulthandler.cancel_dump_traceback_later()
    leaked = restore_normal_scheduling()
    assert not leaked, f"threads left on real-time scheduling (now reset): {', '.join(leaked)}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when CUDA is absent."""
    has_cuda = torch is not None and torch.cuda.is_available()
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


# ---------------------------------------------------------------------------------------------- ROS helpers
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


@pytest.fixture
def ros_context() -> Iterator[object]:
    """A fresh rclpy context for one test (shut down afterwards)."""
    rclpy = pytest.importorskip("rclpy")
    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx)
    try:
        yield ctx
    finally:
        if ctx.ok():
            rclpy.shutdown(context=ctx)


def spin_until(executor: object, predicate: Callable[[], bool], timeout: float) -> bool:
    """Spin ``executor`` until ``predicate()`` holds or ``timeout`` seconds pass; returns the predicate."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.02)
    return predicate()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate()`` every 10 ms (something else does the work) until it holds or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def node_executable(name: str) -> Path:
    """Path of an installed node executable (lib/rynnvla_ros/<name>), as ``ros2 run`` finds it."""
    from ament_index_python.packages import get_package_prefix

    path = Path(get_package_prefix("rynnvla_ros")) / "lib" / "rynnvla_ros" / name
    assert path.is_file(), f"{path} missing: run `make venv` to build and install the package"
    return path


@pytest.fixture
def start_process() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start subprocesses (inheriting the isolated ROS environment); all are stopped at the end of the test."""
    procs: list[subprocess.Popen] = []

    def start(*cmd: str | Path) -> subprocess.Popen:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
