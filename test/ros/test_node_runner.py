"""``NodeSpinner`` with real rclpy: each node spins on a thread of its own, so a node busy in a callback does not
hold up the others; a callback's exception stops the spinning and is kept for the caller."""

from __future__ import annotations

import threading
import time

import pytest
import rclpy
from conftest import wait_for
from std_msgs.msg import Empty

from rynnvla_ros.node_runner import NodeSpinner

pytestmark = pytest.mark.ros


def test_a_node_busy_in_a_callback_does_not_hold_up_the_others(ros_context) -> None:
    release, entered = threading.Event(), threading.Event()
    busy = rclpy.create_node("busy", context=ros_context)

    def block(_msg: Empty) -> None:
        entered.set()
        release.wait(30.0)

    busy.create_subscription(Empty, "/poke", block, 10)
    ticks: list[float] = []
    other = rclpy.create_node("other", context=ros_context)
    other.create_timer(0.01, lambda: ticks.append(time.monotonic()))
    poke = other.create_publisher(Empty, "/poke", 10)
    spinner = NodeSpinner([busy, other], ros_context)
    try:
        assert wait_for(lambda: poke.publish(Empty()) or entered.wait(0.1), 20.0)  # busy's callback now blocks
        n = len(ticks)
        assert wait_for(lambda: len(ticks) >= n + 20, 20.0)  # the other node's timer runs on meanwhile
        assert not spinner.stopped.is_set()
    finally:
        release.set()
        spinner.stop()
        for node in (busy, other):
            node.destroy_node()
    assert spinner.error is None


def test_a_callback_error_stops_the_spinning_and_is_kept(ros_context) -> None:
    node = rclpy.create_node("failing", context=ros_context)

    def fail() -> None:
        raise RuntimeError("broken callback")

    node.create_timer(0.05, fail)
    spinner = NodeSpinner([node], ros_context)
    try:
        assert spinner.stopped.wait(20.0)
    finally:
        spinner.stop()
        node.destroy_node()
    assert isinstance(spinner.error, RuntimeError) and str(spinner.error) == "broken callback"
