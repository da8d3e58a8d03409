"""``rynnvla-eval-sim``: evaluate a checkpoint on the simulated SO100 block-in-circle task through the ROS graph.

The ``so100`` profile's nodes run headless with their usual parameter files and remappings (``hardware:=sim``,
policy on, chunks executed, the given checkpoint, task and decoding mode; the world model with ``--world-model``;
the viewing nodes left out): ``so100_controller`` (the MuJoCo twin) as a child process, the policy (and the world
model) in this process. A client node runs the episodes: episode i calls the controller's ``~/reset_task`` with seed
``seed + i``, waits for the first joint state and camera frame stamped after the reset (the episode's clock starts
at that frame; chunks planned from earlier frames are not counted), then follows ``/so100/task_state`` until it
reports success or the timeout passes. It records the camera (and predicted) frames of the episodes that get a
video.

Writes into ``--out``: ``results.json`` (settings and every episode; rewritten after each, so the same command
resumes an interrupted run, and other settings are refused unless ``--fresh``), ``report.md`` (settings, success
rate with its 95 % Wilson interval, episodes, the command that reproduces the run) and ``videos/*.mp4`` (front |
wrist, and predicted front | predicted wrist with the world model, in real time at 10 frames per second).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rynnvla_ros.eval_graph import EvalError, ProfileGraph, call_service, wait_for_service
from rynnvla_ros.eval_results import VIDEO_CHOICES, ResultsError, keeps_video, records_video
from rynnvla_ros.inference.model_cache import MODES
from rynnvla_ros.tasks.block_in_circle import TASK_TEXT
from rynnvla_ros.tasks.sim_eval import (
    PROG,
    VIDEO_FPS,
    SimEpisode,
    SimResults,
    checkpoint_sha256,
    planned_seeds,
    resample_frames,
    resume,
    write_report,
)

SKIPPED_NODES = ("chunk_visualizer", "foxglove_viewer")
"""Nodes of the so100 profile that only serve viewing; the evaluation leaves them out."""
NOTES = (
    "The policy node keeps no per-episode state to flush, but a chunk it was computing from a frame before a reset "
    "can reach the controller after it; such chunks are not counted, and the controller executes the rows of them "
    "still due (absolute joint targets) during the first seconds of the episode.",
)
NS = 1_000_000_000


@dataclass
class SimEvalConfig:
    """What to evaluate and how (the command-line options)."""

    out: Path
    checkpoint: str = ""
    """Empty: the shipped default checkpoint (rynnvla_ros/default_model.py)."""
    episodes: int = 50
    seed: int = 0
    timeout: float = 40.0
    mode: str = "continuous"
    world_model: bool = False
    videos: str = "first"
    device: str = "auto"
    task: str = TASK_TEXT
    fresh: bool = False
    startup_timeout: float = 120.0
    progress: bool = True

    def checkpoint_dir(self) -> Path:
        """The checkpoint folder, absolute."""
        if self.checkpoint:
            return Path(self.checkpoint).expanduser().resolve()
        from rynnvla_ros.default_model import default_checkpoint_dir

        return default_checkpoint_dir().resolve()

    def command(self) -> str:
        """The command line that reproduces this run (every setting explicit)."""
        args = [
            PROG, "--checkpoint", str(self.checkpoint_dir()), "--episodes", str(self.episodes), "--seed",
            str(self.seed), "--timeout", f"{self.timeout:g}", "--mode", self.mode,
            "--world-model" if self.world_model else "--no-world-model", "--task", self.task, "--videos",
            self.videos, "--device", self.device, "--out", str(self.out.expanduser().resolve()),
        ]  # fmt: skip
        return shlex.join(args)

    def settings(self, sha256: str) -> dict[str, Any]:
        """The settings stored in results.json (those in sim_eval.RESUME_KEYS must match to resume)."""
        return {
            "checkpoint": str(self.checkpoint_dir()),
            "checkpoint_sha256": sha256,
            "mode": self.mode,
            "world_model": self.world_model,
            "task": self.task,
            "episodes": self.episodes,
            "first_seed": self.seed,
            "timeout_s": float(self.timeout),
            "device": self.device,
            "videos": self.videos,
            "command": self.command(),
            "notes": list(NOTES),
        }


# ---------------------------------------------------------------------------------------------------- the graph
@dataclass
class _Episode:
    """What the client gathers during one episode (guarded by the client's condition)."""

    seed: int
    after_ns: int
    """Wall-clock time at which the reset was answered: messages stamped later belong to the episode."""
    record: bool
    first_joint_ns: int | None = None
    first_front_ns: int | None = None
    chunks: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    task_state: Any = None
    success_ns: int | None = None
    frames: dict[str, dict[int, Any]] = field(default_factory=dict)
    last_kept: dict[str, int] = field(default_factory=dict)

    @property
    def start_ns(self) -> int | None:
        if self.first_joint_ns is None or self.first_front_ns is None:
            return None
        return max(self.first_joint_ns, self.first_front_ns)


class SimEvalClient:
    """A node that resets episodes through the controller and follows them (task state, chunks, frames)."""

    def __init__(self, context: Any, controller: str, check: Callable[[], None] | None = None) -> None:
        """``controller``: the controller node's name; ``check()`` raises when the graph cannot progress."""
        import rclpy
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import Image, JointState

        from rynnvla_ros import topics
        from rynnvla_ros.msg import ActionChunk, TaskState
        from rynnvla_ros.srv import TaskReset

        self.node = rclpy.create_node("sim_eval", context=context)
        self.check = check or (lambda: None)
        self.reset_client = self.node.create_client(TaskReset, f"/{controller}/reset_task")
        self._cond = threading.Condition()
        self.episode: _Episode | None = None
        self.last_joint_ns: int | None = None
        self.chunks_seen = 0
        qos = QoSProfile(depth=10)
        self.node.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos)
        self.node.create_subscription(TaskState, topics.TASK_STATE, self._on_task_state, qos)
        self.node.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk, qos)
        for name, topic in (
            ("front", topics.FRONT_IMAGE),
            ("wrist", topics.WRIST_IMAGE),
            ("predicted_front", topics.PREDICTED_FRONT_IMAGE),
            ("predicted_wrist", topics.PREDICTED_WRIST_IMAGE),
        ):
            self.node.create_subscription(Image, topic, lambda m, n=name: self._on_image(n, m), QoSProfile(depth=5))

    # ------------------------------------------------------------------------------------------ callbacks
    def _on_joints(self, msg: Any) -> None:
        from rynnvla_ros.nodes.model_common import stamp_ns

        stamp = stamp_ns(msg.header.stamp)
        with self._cond:
            first = self.last_joint_ns is None
            self.last_joint_ns = stamp
            ep = self.episode
            if ep is not None and ep.first_joint_ns is None and stamp > ep.after_ns:
                ep.first_joint_ns = stamp
                first = True
            if first:
                self._cond.notify_all()

    def _on_task_state(self, msg: Any) -> None:
        from rynnvla_ros.nodes.model_common import stamp_ns

        stamp = stamp_ns(msg.header.stamp)
        with self._cond:
            ep = self.episode
            if ep is None or msg.seed != ep.seed or stamp <= ep.after_ns:
                return
            ep.task_state = msg
            if msg.success and ep.success_ns is None and ep.start_ns is not None:
                ep.success_ns = max(stamp, ep.start_ns)
                self._cond.notify_all()

    def _on_chunk(self, msg: Any) -> None:
        from rynnvla_ros.nodes.model_common import stamp_ns

        if msg.dry_run:
            return
        stamp = stamp_ns(msg.header.stamp)
        latency = (time.time_ns() - stamp) / NS
        with self._cond:
            self.chunks_seen += 1
            if self.chunks_seen == 1:
                self._cond.notify_all()
            ep = self.episode
            if ep is not None and stamp > ep.after_ns:
                ep.chunks += 1
                ep.latency_sum += latency
                ep.latency_max = max(ep.latency_max, latency)

    def _on_image(self, name: str, msg: Any) -> None:
        from rynnvla_ros.nodes.model_common import stamp_ns

        stamp = stamp_ns(msg.header.stamp)
        with self._cond:
            ep = self.episode
            if ep is None or stamp <= ep.after_ns:
                return
            if name == "front" and ep.first_front_ns is None:
                ep.first_front_ns = stamp
                self._cond.notify_all()
            if not ep.record:
                return
            # camera frames thinned to the video's rate (they come at 30 Hz); predictions (per chunk) all kept
            if not name.startswith("predicted") and stamp - ep.last_kept.get(name, -NS) < 0.9 * NS / VIDEO_FPS:
                return
            ep.last_kept[name] = stamp
        from rynnvla_ros.image_conversion import image_to_rgb

        rgb = image_to_rgb(msg)
        with self._cond:
            if self.episode is ep:
                ep.frames.setdefault(name, {})[stamp] = rgb

    # ------------------------------------------------------------------------------------------ episodes
    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate()`` (checked under the lock); EvalError naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                if time.monotonic() > deadline:
                    raise EvalError(f"{what} within {timeout:g} s")
                self._cond.wait(0.25)
                self.check()

    def wait_ready(self, timeout: float) -> None:
        """Wait for the controller's first joint state and ``~/reset_task`` service, and the policy's first chunk
        (so the first episode does not pay for the model's warm-up)."""
        self._wait(lambda: self.last_joint_ns is not None, timeout, "no joint state from the controller")
        message = f"the service {self.reset_client.srv_name} did not appear within {timeout:g} s"
        wait_for_service(self.reset_client, timeout, self.check, message)
        self._wait(lambda: self.chunks_seen > 0, timeout, "the policy published no action chunk (see its log)")

    def reset(self, seed: int, record: bool, timeout: float) -> Any:
        """Lay episode ``seed`` out and start gathering it; the service's response."""
        from rynnvla_ros.srv import TaskReset

        with self._cond:
            self.episode = None
        message = f"the controller did not answer the task reset (seed {seed}) within {timeout:g} s"
        response = call_service(self.reset_client, TaskReset.Request(seed=seed), timeout, self.check, message)
        if not response.success:
            raise EvalError(f"the controller refused the task reset (seed {seed}): {response.message}")
        with self._cond:
            self.episode = _Episode(seed=seed, after_ns=time.time_ns(), record=record)
        return response

    def wait_started(self, timeout: float) -> int:
        """Stamp (ns) of the episode's start: its first joint state and front frame after the reset."""
        ep = self.episode
        self._wait(lambda: ep.start_ns is not None, timeout, "no joint state and camera frame after the task reset")
        return int(ep.start_ns)

    def wait_outcome(self, end_ns: int, on_tick: Callable[[float], None] | None = None) -> int | None:
        """Wait until the task succeeds or the wall clock reaches ``end_ns``; the success stamp, or None."""
        ep = self.episode
        while True:
            with self._cond:
                if ep.success_ns is not None or time.time_ns() >= end_ns:
                    return ep.success_ns
                self._cond.wait(min(0.25, max(0.0, (end_ns - time.time_ns()) / NS)))
            self.check()
            if on_tick is not None:
                on_tick((time.time_ns() - ep.start_ns) / NS)

    def finish(self) -> _Episode:
        """Stop gathering; what the episode gathered."""
        with self._cond:
            ep, self.episode = self.episode, None
            return ep


def start_graph(cfg: SimEvalConfig) -> ProfileGraph:
    """The so100 profile's nodes (sim, policy on, viewing off) and the client; the controller (OWN_PROCESS:
    physics and rendering apart from model inference) runs as a child process."""
    args = {
        "hardware": "sim",
        "checkpoint": str(cfg.checkpoint_dir()),
        "task": cfg.task,
        "policy": "true",
        "world_model": str(cfg.world_model).lower(),
        "dry_run": "false",
        "device": cfg.device,
        "rviz": "false",
        "foxglove": "false",
    }

    def client(graph: ProfileGraph) -> SimEvalClient:
        return SimEvalClient(graph.context, graph.node_named_after("so100_controller"), graph.check_children)

    return ProfileGraph("so100", args, client, params={"policy": {"mode": cfg.mode}}, skip=SKIPPED_NODES)


# ---------------------------------------------------------------------------------------------------- the run
def run_evaluation(cfg: SimEvalConfig) -> SimResults:
    """Run (or resume) the evaluation; returns the results, also written to ``cfg.out``."""
    if cfg.episodes < 1 or cfg.timeout <= 0 or cfg.startup_timeout <= 0:
        raise EvalError("need at least one episode and positive timeouts")
    if cfg.mode not in MODES:
        raise EvalError(f"mode must be one of {', '.join(MODES)}, got {cfg.mode!r}")
    if not cfg.task.strip():
        raise EvalError("the task instruction is empty")
    checkpoint = cfg.checkpoint_dir()
    if not checkpoint.is_dir():
        raise EvalError(f"checkpoint folder {checkpoint} does not exist")
    settings = cfg.settings(checkpoint_sha256(checkpoint))
    seeds = planned_seeds(cfg.seed, cfg.episodes)
    results = resume(None if cfg.fresh else SimResults.load(cfg.out), settings, seeds)
    todo = [(i, s) for i, s in enumerate(seeds) if s not in results.done_seeds()]
    cfg.out.mkdir(parents=True, exist_ok=True)
    results.save(cfg.out)
    write_report(results, cfg.out)
    if not todo:
        return results

    from tqdm import tqdm

    graph = start_graph(cfg)
    bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo), unit="episode", disable=not cfg.progress,
               dynamic_ncols=True)  # fmt: skip
    _show_rate(bar, results)
    try:
        graph.client.wait_ready(cfg.startup_timeout)
        for index, seed in todo:
            results.add(_run_episode(cfg, graph.client, index, seed, bar))
            results.save(cfg.out)
            write_report(results, cfg.out)
            _show_rate(bar, results)
            bar.update(1)
    finally:
        bar.close()
        graph.close()
    return results


def _show_rate(bar: Any, results: SimResults) -> None:
    s = results.summary()
    if s["episodes"]:
        bar.set_postfix_str(f"success {s['successes']}/{s['episodes']} ({100 * s['rate']:.0f} %)")


def _run_episode(cfg: SimEvalConfig, client: SimEvalClient, index: int, seed: int, bar: Any) -> SimEpisode:
    record = records_video(cfg.videos, index)
    wall0 = time.monotonic()
    bar.set_description_str(f"seed {seed}: reset")
    client.reset(seed, record, cfg.startup_timeout)
    start_ns = client.wait_started(cfg.startup_timeout)
    reset_s = time.monotonic() - wall0
    timeout_ns = round(cfg.timeout * NS)

    def on_tick(elapsed: float) -> None:
        bar.set_description_str(f"seed {seed}: {min(elapsed, cfg.timeout):.0f}/{cfg.timeout:g} s")

    success_ns = client.wait_outcome(start_ns + timeout_ns, on_tick)
    ep = client.finish()
    success = success_ns is not None
    end_ns = success_ns if success else start_ns + timeout_ns
    state = ep.task_state
    messages = []
    distance = None
    if state is None:
        messages.append("no task state from the controller during the episode")
    else:
        distance = math.hypot(state.block.position.x - state.target.x, state.block.position.y - state.target.y)
    if ep.chunks == 0:
        messages.append("no action chunk planned from this episode's frames (see the policy's log)")
    episode = SimEpisode(
        seed=seed,
        success=success,
        time_to_success_s=(success_ns - start_ns) / NS if success else None,
        duration_s=(end_ns - start_ns) / NS,
        final_distance_m=distance,
        final_inside=bool(state is not None and state.inside),
        final_held=bool(state is not None and state.held),
        chunks=ep.chunks,
        chunk_latency_mean_s=ep.latency_sum / ep.chunks if ep.chunks else None,
        chunk_latency_max_s=ep.latency_max if ep.chunks else None,
        reset_s=reset_s,
        wall_time_s=time.monotonic() - wall0,
        message="; ".join(messages),
    )
    if keeps_video(cfg.videos, index, success):
        episode.video = _write_video(cfg, episode, ep.frames, start_ns, end_ns)
        if not episode.video:
            episode.message = "; ".join([*messages, "no camera frames recorded: no video"])
    return episode


def _write_video(
    cfg: SimEvalConfig, episode: SimEpisode, frames: dict[str, dict[int, Any]], start: int, end: int
) -> str:
    from rynnvla_ros.libero.video import compose_frames, write_mp4

    front = frames.get("front", {})
    if not front:
        return ""
    composed = compose_frames(front, frames.get("wrist", {}), frames.get("predicted_front"),
                              frames.get("predicted_wrist"))  # fmt: skip
    images = resample_frames(sorted(front), composed, start, end, VIDEO_FPS)
    name = f"seed{episode.seed:04d}_{'success' if episode.success else 'failure'}.mp4"
    write_mp4(images, cfg.out / "videos" / name, fps=VIDEO_FPS)
    return f"videos/{name}"


# ---------------------------------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None = None) -> SimEvalConfig:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Evaluate a RynnVLA checkpoint on the simulated SO100 block-in-circle task through the ROS graph "
        "(so100 profile: the MuJoCo twin's controller + the policy).",
    )
    parser.add_argument("--checkpoint", default="", help="checkpoint directory (default: the shipped default model)")
    parser.add_argument("--episodes", type=int, default=50, help="episodes (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="layout seed of the first episode; episode i: seed + i")
    parser.add_argument("--timeout", type=float, default=40.0, help="seconds per episode before it fails (40)")
    parser.add_argument("--mode", choices=MODES, default="continuous", help="the policy's action decoding")
    parser.add_argument(
        "--world-model",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run the world model (its predicted frames go into the videos); default off",
    )
    parser.add_argument("--videos", choices=VIDEO_CHOICES, default="first", help="episodes that get a video")
    parser.add_argument("--out", type=Path, required=True, help="output folder (an existing run there is resumed)")
    parser.add_argument("--fresh", action="store_true", help="ignore the results already in --out")
    parser.add_argument("--device", default="auto", help="model device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--task", default=TASK_TEXT, help=f"instruction given to the policy ({TASK_TEXT!r})")
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, help="s to wait for the graph to come up and for each reset"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = parser.parse_args(argv)
    if a.episodes < 1:
        parser.error("--episodes must be >= 1")
    if a.timeout <= 0 or a.startup_timeout <= 0:
        parser.error("--timeout and --startup-timeout must be > 0")
    return SimEvalConfig(
        out=a.out,
        checkpoint=a.checkpoint,
        episodes=a.episodes,
        seed=a.seed,
        timeout=a.timeout,
        mode=a.mode,
        world_model=a.world_model,
        videos=a.videos,
        device=a.device,
        task=a.task,
        fresh=a.fresh,
        startup_timeout=a.startup_timeout,
        progress=not a.no_progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rynnvla-eval-sim``."""
    cfg = parse_args(argv)
    try:
        results = run_evaluation(cfg)
    except (EvalError, ResultsError, ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume ({cfg.out})", file=sys.stderr)
        return 130
    s = results.summary()
    low, high = s["ci95"]
    print(
        f"block in circle: {s['successes']}/{s['episodes']} = {100 * s['rate']:.1f} % "
        f"(95 % Wilson interval {100 * low:.1f}-{100 * high:.1f} %)"
    )
    print(f"report: {cfg.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
