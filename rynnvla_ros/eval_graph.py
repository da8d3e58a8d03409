"""A launch profile's nodes hosted inside an evaluation process (``rynnvla-eval-libero``, ``rynnvla-eval-sim``).

:class:`ProfileGraph` starts the profile's nodes of this package with their usual parameter files and remappings
(:func:`rynnvla_ros.bringup.start_nodes`: nodes that ask for their own process run as children), adds the
evaluation's client node, and spins them in background threads (:class:`rynnvla_ros.node_runner.NodeSpinner`) in
their own rclpy context. The client's waits call :meth:`ProfileGraph.check_children`, so a dead child or a node whose
callback raised ends the run with an error instead of a hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rynnvla_ros.profiles import PACKAGE, NodeSpec


class EvalError(RuntimeError):
    """The evaluation cannot go on; the message says why."""


class ProfileGraph:
    """The nodes of profile ``name`` resolved from ``args`` (``params``: extra parameters by node name; ``skip``:
    node names left out) and the client made by ``make_client(graph)``, which must have a ``node``."""

    def __init__(
        self,
        name: str,
        args: Mapping[str, str],
        make_client: Callable[[ProfileGraph], Any],
        params: dict[str, dict[str, Any]] | None = None,
        skip: Sequence[str] = (),
    ) -> None:
        import rclpy

        from rynnvla_ros.bringup import share_dir, start_nodes
        from rynnvla_ros.node_runner import NodeSpinner
        from rynnvla_ros.profiles import get_profile

        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        self.nodes: list[Any] = []
        self.children: dict[str, Any] = {}
        self.client: Any = None
        self.spinner = None
        try:
            profile = get_profile(name)
            values = profile.resolve(dict(args))
            self.specs: list[NodeSpec] = [
                s for s in profile.active_nodes(values) if s.package == PACKAGE and s.name not in skip
            ]
            self.nodes, self.children = start_nodes(
                profile, values, self.specs, share_dir() / "config", params, self.context
            )
            self.client = make_client(self)
        except Exception:
            self.close()
            raise
        self.spinner = NodeSpinner([*self.nodes, self.client.node], self.context)

    def node_named_after(self, executable: str) -> str:
        """The name of the graph's node of ``executable``; EvalError when there is none."""
        for spec in self.specs:
            if spec.executable == executable:
                return spec.name
        raise EvalError(f"the graph has no {executable} node")

    def check_children(self) -> None:
        """EvalError when a child process has exited or a callback raised (the graph no longer spins)."""
        if self.spinner is not None and self.spinner.stopped.is_set():
            raise EvalError(f"the graph stopped spinning: a callback raised {self.spinner.error!r}")
        for name, child in self.children.items():
            if child.poll() is not None:
                raise EvalError(f"{name} (pid {child.pid}) exited with code {child.returncode}; see its log above")

    def close(self) -> None:
        """Stop the child processes and spinning, close and destroy the nodes, shut the context down."""
        import rclpy

        from rynnvla_ros.bringup import stop_children
        from rynnvla_ros.node_runner import close_nodes

        stop_children(list(self.children.values()))
        if self.spinner is not None:
            self.spinner.stop()
        close_nodes(self.nodes)
        if self.client is not None:
            self.client.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)


def wait_for_service(client: Any, timeout: float, check: Callable[[], None], message: str) -> None:
    """Wait for ``client``'s service, calling ``check()`` meanwhile; EvalError(``message``) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not client.wait_for_service(timeout_sec=0.5):
        check()
        if time.monotonic() > deadline:
            raise EvalError(message)


def call_service(client: Any, request: Any, timeout: float, check: Callable[[], None], message: str) -> Any:
    """Call ``client``'s service and wait for the response, calling ``check()`` meanwhile (the graph spins in
    another thread); EvalError(``message``) when it does not come within ``timeout`` s."""
    future = client.call_async(request)
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    deadline = time.monotonic() + timeout
    while not done.wait(0.25):
        check()
        if time.monotonic() > deadline:
            raise EvalError(message)
    return future.result()
