"""``rynnvla-bench-ros``: latency the ``policy`` node adds between an observation and its action chunk.

A tiny random checkpoint is written to a temporary folder and the ``policy`` node is started in its own process on
an isolated loopback ROS domain. This process plays camera and robot: it publishes a joint state, a wrist image and
a front image (stamped just before publishing), and receives the chunk computed from that observation. For every
chunk it records

  latency   = receive time - observation stamp
  model     = the chunk's inference_time (the model's own time: VQGAN tokenisation, forward, head)
  overhead  = latency - model: transport of the images and the chunk, conversion and resize, observation
              assembly, thread hand-over, mapping to joint positions and message building

``--mode paced`` (default) sends the next observation only after the previous chunk arrived, so overhead holds no
waiting for a busy model; ``--mode stream`` publishes at ``--rate`` Hz like cameras do (overhead then includes the
time an observation waits while the model is busy with an older one). The node is the installed ``policy``
executable (spun single-threaded, see :func:`rynnvla_ros.node_runner.spin_nodes`); ``--camera`` the image size sent
(640x480 needs ``--fastdds-profile config/fastdds_large_images.xml`` to travel through shared memory). Prints a
summary and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TASK = "Place the strawberries from the table into the cup."
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def _policy_command(checkpoint: Path, device: str) -> list[str]:
    params = [f"checkpoint:={checkpoint}", f"device:={device}", f"task:={TASK}", "dry_run:=false", "max_age:=1.0"]
    args = ["--ros-args", *[x for p in params for x in ("-p", p)]]
    try:
        from ament_index_python.packages import get_package_prefix

        exe = Path(get_package_prefix("rynnvla_ros")) / "lib" / "rynnvla_ros" / "policy"
        if exe.is_file():
            return [str(exe), *args]
    except Exception:
        pass
    code = "import sys; from rynnvla_ros.node_runner import main; sys.exit(main('rynnvla_ros.nodes.policy:PolicyNode'))"
    return [sys.executable, "-c", code, *args]


class Driver:
    """Publishes observations and times the chunks that come back."""

    def __init__(self, camera: tuple[int, int]) -> None:
        import numpy as np
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import Image, JointState

        from rynnvla_ros.image_conversion import array_to_image
        from rynnvla_ros.msg import ActionChunk
        from rynnvla_ros.nodes.model_common import SENSOR_QOS

        self.node = rclpy.create_node("bench_driver")
        w, h = camera
        rng = np.random.default_rng(0)
        self.front = array_to_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "rgb8")
        self.wrist = array_to_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "rgb8")
        self.joints = JointState(name=list(JOINTS), position=[0.0, -0.5, 0.5, 0.2, 0.0, 0.3])
        self.front_pub = self.node.create_publisher(Image, "front/image_raw", QoSProfile(depth=5))  # as cameras do
        self.wrist_pub = self.node.create_publisher(Image, "wrist/image_raw", QoSProfile(depth=5))
        self.joint_pub = self.node.create_publisher(JointState, "joint_states", SENSOR_QOS)
        self.results: list[dict[str, float]] = []
        self.stamps: dict[int, None] = {}
        self._arrived = threading.Condition()
        self.node.create_subscription(ActionChunk, "action_chunk", self._on_chunk, 100)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on_chunk(self, msg: Any) -> None:
        received = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latency = (received - stamp) / 1e9
        with self._arrived:
            self.results.append(
                {
                    "stamp": stamp,
                    "latency": latency,
                    "model": msg.inference_time,
                    "overhead": latency - msg.inference_time,
                }
            )
            self._arrived.notify_all()

    def publish(self) -> int:
        """One observation; returns its stamp (ns)."""
        now = time.time_ns()
        for msg in (self.joints, self.wrist, self.front):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        self.joint_pub.publish(self.joints)
        self.wrist_pub.publish(self.wrist)
        self.front_pub.publish(self.front)
        return now

    def wait_for(self, stamp: int, timeout: float) -> bool:
        """Wait until the chunk of ``stamp`` arrived."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not any(r["stamp"] == stamp for r in self.results[-5:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
        return True

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the policy process, drive it, and return the measurements."""
    import rclpy

    from rynnvla_ros.inference.stats import summarize
    from rynnvla_ros.inference.tiny_checkpoint import make_tiny_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="rynnvla_bench_ros_"))
    proc = None
    try:
        checkpoint = make_tiny_checkpoint(tmp / "ckpt", image_size=args.image_size, time_horizon=args.horizon)
        proc = subprocess.Popen(
            _policy_command(checkpoint, args.device),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        rclpy.init()
        driver = Driver(tuple(args.camera))
        try:
            _warm_up(driver, proc, args.warmup)
            driver.results.clear()
            lost = 0
            if args.mode == "paced":
                for _ in range(args.observations):
                    if not driver.wait_for(driver.publish(), timeout=args.timeout):
                        lost += 1  # a message of this observation was lost in transport (best-effort joint state)
                    time.sleep(args.gap)
            else:
                period = 1.0 / args.rate
                next_t = time.monotonic()
                for _ in range(args.observations):
                    driver.publish()
                    next_t += period
                    time.sleep(max(0.0, next_t - time.monotonic()))
                time.sleep(1.0)
            results = list(driver.results)
        finally:
            driver.close()
            rclpy.shutdown()
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n--- policy node output ---\n{_stop(proc)[-4000:]}") from None
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    ms = {k: summarize([1e3 * r[k] for r in results]) for k in ("latency", "model", "overhead")}
    return {
        "mode": args.mode,
        "observations": args.observations,
        "chunks": len(results),
        # paced: observations whose chunk never came (a message lost in transport); stream: observations replaced by
        # newer ones while the model was busy (latest-only, by design)
        "unanswered": lost if args.mode == "paced" else args.observations - len(results),
        "camera": list(args.camera),
        "image_size": args.image_size,
        "horizon": args.horizon,
        "device": args.device,
        "fastdds_profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", ""),
        "cpus": os.cpu_count(),
        "ms": ms,
        "target_overhead_median_ms": 5.0,
        "meets_target": bool(results) and ms["overhead"]["median"] <= 5.0,
    }


def _stop(proc: subprocess.Popen | None) -> str:
    """Stop the policy process; its output."""
    if proc is None:
        return ""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    except ValueError:  # output already read
        out = ""
    return out or ""


def _warm_up(driver: Driver, proc: subprocess.Popen, n: int) -> None:
    deadline = time.monotonic() + 120
    got = 0
    while got < n:
        if proc.poll() is not None:
            raise RuntimeError(f"the policy node exited ({proc.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError("the policy node published no chunk within 120 s")
        if driver.wait_for(driver.publish(), timeout=2.0):
            got += 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rynnvla-bench-ros``."""
    p = argparse.ArgumentParser(prog="rynnvla-bench-ros", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("paced", "stream"), default="paced")
    p.add_argument("--observations", type=int, default=200, help="observations measured (after the warm-up)")
    p.add_argument("--warmup", type=int, default=5, help="chunks received before measuring")
    p.add_argument("--rate", type=float, default=30.0, help="Hz of observations in stream mode")
    p.add_argument("--gap", type=float, default=0.05, help="s between a chunk and the next observation (paced)")
    p.add_argument("--timeout", type=float, default=3.0, help="s to wait for a chunk before counting it lost (paced)")
    p.add_argument("--camera", type=int, nargs=2, default=(256, 256), metavar=("W", "H"), help="camera image size")
    p.add_argument("--fastdds-profile", default="", help="Fast DDS XML profile for both processes (e.g. larger SHM)")
    p.add_argument("--image-size", type=int, default=256, help="the tiny model's image side (multiple of 16)")
    p.add_argument("--horizon", type=int, default=20, help="K, steps per chunk")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--out", default="rynnvla_bench_ros.json", help="JSON file written")
    args = p.parse_args(argv)
    if args.observations < 1 or args.rate <= 0 or args.image_size % 16:
        p.error("--observations must be >= 1, --rate > 0, --image-size a multiple of 16")
    # an isolated loopback domain, set before rclpy is loaded (the child process inherits it)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
    if args.fastdds_profile:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(args.fastdds_profile).resolve())
    try:
        report = run(args)
    except RuntimeError as exc:
        print(f"rynnvla-bench-ros: {exc}", file=sys.stderr)
        return 1
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    unanswered = f"{report['unanswered']} " + ("lost" if args.mode == "paced" else "replaced while the model was busy")
    print(
        f"policy node latency, {report['mode']} mode, {report['chunks']} chunks ({unanswered}), camera "
        f"{args.camera[0]}x{args.camera[1]} -> model {args.image_size}, K={args.horizon}, {args.device}, "
        f"{report['cpus']} CPUs" + (f", Fast DDS profile {args.fastdds_profile}" if args.fastdds_profile else "")
    )
    print(f"{'ms':<10}" + "".join(f"{k:>9}" for k in ("median", "mean", "p90", "p99", "max")))
    for name, s in report["ms"].items():
        if s.get("n"):
            print(f"{name:<10}" + "".join(f"{s[k]:9.2f}" for k in ("median", "mean", "p90", "p99", "max")))
    verdict = "meets" if report["meets_target"] else "misses"
    print(
        f"overhead median {report['ms']['overhead'].get('median', float('nan')):.2f} ms {verdict} the 5 ms target; "
        f"wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
