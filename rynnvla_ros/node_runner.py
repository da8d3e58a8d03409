"""Start node classes: one per process (``ros2 run`` executables) or several in one process (``rynnvla-bringup``)."""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
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


class NodeSpinner:
    """Spins each of ``nodes`` on a single-threaded executor of its own, each in a thread of its own (in
    ``context``, rclpy's default when None), until :meth:`stop`.

    Not rclpy's ``MultiThreadedExecutor``: its dispatch loop keeps a core busy and, measured here with the SO100
    controller and a 100 Hz subscriber in one process, delivers messages hundreds of milliseconds late and drops
    some (``rynnvla-bench-executors``, docs/benchmarks.md; ros2/rclpy#1223). One node's callbacks run one at a
    time, as in a mutually exclusive callback group; nodes with slow work do it on worker threads of their own.
    An exception raised in a callback stops all spinning: :attr:`stopped` is set and :attr:`error` holds it.
    """

    def __init__(self, nodes: Sequence[Node], context: Any = None) -> None:
        self.stopped = threading.Event()  # set by stop() and when a node's spinning ended on its own
        self.error: BaseException | None = None  # the first exception a callback raised
        self._executors = [SingleThreadedExecutor(context=context) for _ in nodes]
        self._threads = []
        for node, executor in zip(nodes, self._executors, strict=True):
            executor.add_node(node)
            thread = threading.Thread(target=self._spin, args=(executor,), name=f"spin-{node.get_name()}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _spin(self, executor: SingleThreadedExecutor) -> None:
        try:
            while not self.stopped.is_set() and executor.context.ok():
                executor.spin_once(timeout_sec=STOP_POLL)
        except ExternalShutdownException:
            pass
        except BaseException as exc:  # kept for the caller: spin_nodes raises it, ProfileGraph reports it
            self.error = self.error or exc
        finally:
            self.stopped.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop spinning and wait for the threads (each finishes the callback it is in)."""
        self.stopped.set()
        for thread in self._threads:
            thread.join(timeout)
        for executor in self._executors:
            executor.shutdown(timeout_sec=1.0)


def spin_nodes(nodes: Sequence[Node]) -> None:
    """Spin ``nodes`` (:class:`NodeSpinner`) until Ctrl-C, SIGTERM or the context's shutdown; then close and destroy
    them and shut rclpy down.

    The signals only set a flag that the spin loops read every :data:`STOP_POLL` s, so no callback is interrupted
    half-way (an exception raised at an arbitrary point could leave a lock held and the shutdown waiting on it), and
    the nodes close while the context is still valid. A second signal interrupts a shutdown that hangs.
    """
    spinner = NodeSpinner(nodes)

    def request_stop(_signum: int, _frame: object) -> None:
        if spinner.stopped.is_set():
            raise KeyboardInterrupt
        spinner.stopped.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    try:
        while not spinner.stopped.wait(STOP_POLL) and rclpy.ok():
            pass
        spinner.stop()
        if spinner.error is not None:
            raise spinner.error
    except KeyboardInterrupt:
        pass
    finally:
        close_nodes(nodes)
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
