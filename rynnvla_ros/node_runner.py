"""Start node classes: one per process (``ros2 run`` executables) or several in one process (``rynnvla-bringup``)."""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

from rynnvla_ros.executables import NODES

STOP_POLL = 0.1  # s between checks for a stop request (Ctrl-C, SIGTERM) while spinning


def load_node_class(target: str) -> type[Node]:
    """Import ``module:Class`` (a value of :data:`rynnvla_ros.executables.NODES`)."""
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def node_class(executable: str) -> type[Node]:
    """The node class behind a package executable name."""
    try:
        return load_node_class(NODES[executable])
    except KeyError:
        raise ValueError(f"no executable {executable!r} in rynnvla_ros (have: {', '.join(sorted(NODES))})") from None


def close_nodes(nodes: Sequence[Node]) -> None:
    """Close (when the class has ``close``) and destroy ``nodes``, the last first."""
    for node in reversed(nodes):
        close = getattr(node, "close", None)
        if close is not None:
            close()
        node.destroy_node()


def spin_nodes(nodes: Sequence[Node], threads: int | None = None) -> None:
    """Spin ``nodes`` until Ctrl-C or SIGTERM; then close and destroy them and shut rclpy down.

    The signals only set a flag that the spin loop reads every :data:`STOP_POLL` s, so no callback is interrupted
    half-way (an exception raised at an arbitrary point could leave a lock held and the shutdown waiting on it), and
    the nodes close while the context is still valid. A second signal interrupts a shutdown that hangs.

    A single node whose class sets ``SINGLE_THREADED = True`` (it does its heavy work on its own thread) gets a
    single-threaded executor, which delivers messages about 3 ms sooner than rclpy's multi-threaded one; anything
    else shares one multi-threaded executor.
    """
    if len(nodes) == 1 and getattr(nodes[0], "SINGLE_THREADED", False):
        executor = SingleThreadedExecutor()
    else:
        executor = MultiThreadedExecutor(num_threads=threads)
    for node in nodes:
        executor.add_node(node)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=STOP_POLL)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close_nodes(nodes)
        executor.shutdown(timeout_sec=1.0)
        if rclpy.ok():
            rclpy.shutdown()


def exit_code(nodes: Sequence[Node]) -> int:
    """The process's exit status once ``nodes`` stopped: the largest ``exit_code`` attribute a node set (a node
    that ends the graph because it cannot go on sets 1), else 0."""
    return max((int(getattr(n, "exit_code", 0)) for n in nodes), default=0)


def main(target: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of a node executable: ``rclpy.init`` with the command line, build the node, spin."""
    rclpy.init(args=list(sys.argv if argv is None else argv))
    try:
        node = load_node_class(target)()
    except Exception as exc:  # a bad parameter or a missing file: say so plainly, not with a traceback
        print(f"[{target}] failed to start: {exc}", file=sys.stderr)
        rclpy.shutdown()
        return 1
    spin_nodes([node])
    return exit_code([node])
