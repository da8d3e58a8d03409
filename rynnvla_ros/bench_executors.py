"""``rynnvla-bench-executors``: how rclpy's multi-threaded executor and :class:`~rynnvla_ros.node_runner.NodeSpinner`
(one single-threaded executor per node, each on its own thread) host several nodes in one process.

The process hosts what ``rynnvla-bringup`` and the evaluations host together: the SO100 controller (MuJoCo twin, no
cameras, 100 Hz control loop) and a listener node like the policy's, subscribed to the controller's
``/joint_states`` and to ``/joint_trajectory``. A child process publishes one-point trajectories at ``--rate`` Hz,
stamped when sent. Measuring starts 2 s after the first joint state. For each way of spinning it reports the
``/joint_states`` rate the listener receives (the control loop's health), the delivery latency (receive time -
stamp) of joint states and trajectories, the fraction of trajectories delivered, and the process's CPU time per
second. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WAYS = ("multi_threaded", "node_spinner")


def _publish(rate: float, seconds: float) -> None:
    """The child process: publish one-point trajectories (the ready pose, due 0.5 s ahead) for ``seconds``."""
    import rclpy
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from rynnvla_ros.control import so100_description as desc

    rclpy.init()
    node = rclpy.create_node("bench_trajectory_source")
    pub = node.create_publisher(JointTrajectory, "/joint_trajectory", 10)
    point = JointTrajectoryPoint(positions=list(desc.READY_POSITIONS), time_from_start=Duration(nanosec=500_000_000))
    end = time.monotonic() + seconds
    next_t = time.monotonic()
    while time.monotonic() < end:
        msg = JointTrajectory(joint_names=list(desc.JOINT_NAMES), points=[point])
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        next_t += 1.0 / rate
        time.sleep(max(0.0, next_t - time.monotonic()))
    node.destroy_node()
    rclpy.shutdown()


def measure(way: str, args: argparse.Namespace) -> dict[str, Any]:
    """Host the controller and a listener spun ``way``, feed trajectories from a child process, return the numbers."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from rynnvla_ros.control.sim_backend import SimBackend, SimConfig
    from rynnvla_ros.inference.stats import summarize
    from rynnvla_ros.node_runner import NodeSpinner, close_nodes
    from rynnvla_ros.nodes.so100_controller import So100ControllerNode

    def age(msg: Any) -> float:
        return time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

    context = rclpy.Context()
    rclpy.init(context=context)
    received: dict[str, list[tuple[float, float]]] = {"joint_states": [], "trajectories": []}
    controller = So100ControllerNode(backend=SimBackend(SimConfig(cameras=())), context=context)
    listener = rclpy.create_node("bench_listener", context=context)
    listener.create_subscription(
        JointState, "/joint_states", lambda m: received["joint_states"].append((time.monotonic(), age(m))), 10
    )
    listener.create_subscription(
        JointTrajectory, "/joint_trajectory", lambda m: received["trajectories"].append((time.monotonic(), age(m))), 10
    )
    nodes = [controller, listener]
    if way == "multi_threaded":
        executor = MultiThreadedExecutor(context=context)
        for node in nodes:
            executor.add_node(node)
    else:
        spinner = NodeSpinner(nodes, context)

    def spin(seconds: float) -> None:
        if way == "multi_threaded":
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.02)
        else:
            time.sleep(seconds)

    deadline = time.monotonic() + 60.0
    while not received["joint_states"] and time.monotonic() < deadline:  # the twin connects
        spin(0.1)
    source = subprocess.Popen(
        [sys.executable, "-m", "rynnvla_ros.bench_executors", "--publish", str(args.rate), str(args.seconds + 4)]
    )
    spin(2.0)  # discovery settles
    window = (time.monotonic(), time.monotonic() + args.seconds)
    cpu = time.process_time()
    spin(args.seconds)
    cpu_per_s = (time.process_time() - cpu) / args.seconds
    if way == "multi_threaded":
        executor.shutdown(timeout_sec=1.0)
    else:
        spinner.stop()
    close_nodes(nodes)
    rclpy.shutdown(context=context)
    source.wait(timeout=30)
    out: dict[str, Any] = {"cpu_s_per_s": cpu_per_s}
    for topic, rows in received.items():
        inside = [lat for t, lat in rows if window[0] <= t < window[1]]
        out[topic] = {"hz": len(inside) / args.seconds, "latency_ms": summarize([1e3 * x for x in inside])}
    out["trajectories"]["delivered"] = out["trajectories"]["hz"] / args.rate
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rynnvla-bench-executors``."""
    p = argparse.ArgumentParser(prog="rynnvla-bench-executors", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="s measured per way of spinning")
    p.add_argument("--rate", type=float, default=50.0, help="Hz of trajectories from the child process")
    p.add_argument("--out", default="rynnvla_bench_executors.json", help="JSON file written")
    p.add_argument("--publish", nargs=2, type=float, help=argparse.SUPPRESS)  # the child process's role
    args = p.parse_args(argv)
    if args.publish:
        _publish(*args.publish)
        return 0
    if args.seconds <= 0 or args.rate <= 0:
        p.error("--seconds and --rate must be > 0")
    # an isolated loopback domain, set before rclpy is loaded (the child process inherits it)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
    report = {"cpus": os.cpu_count(), "seconds": args.seconds, "trajectory_rate": args.rate}
    report.update({way: measure(way, args) for way in WAYS})
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"controller + listener in one process, {args.rate:g} Hz trajectories, {args.seconds:g} s, "
        f"{report['cpus']} CPUs"
    )
    print(
        f"{'':<16}{'states Hz':>10}{'state p50':>10}{'state p99':>10}{'traj p50':>10}{'traj p99':>10}{'delivered':>10}"
        f"{'CPU s/s':>9}"
    )
    for way in WAYS:
        r = report[way]
        s, t = r["joint_states"]["latency_ms"], r["trajectories"]["latency_ms"]
        print(
            f"{way:<16}{r['joint_states']['hz']:10.1f}{s.get('median', float('nan')):10.1f}"
            f"{s.get('p99', float('nan')):10.1f}{t.get('median', float('nan')):10.1f}{t.get('p99', float('nan')):10.1f}"
            f"{r['trajectories']['delivered']:10.0%}{r['cpu_s_per_s']:9.2f}"
        )
    print(f"latencies in ms; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
