"""``rynnvla-eval-libero``: evaluate a checkpoint on LIBERO through the ROS graph, headless.

The nodes of the ``libero`` profile (``libero_bridge``, ``policy``, optionally ``world_model``) run in this process
with their usual parameter files and remappings; a client node selects each trial through the bridge's ``~/select``
service and follows its ``episode_status``, and records the camera (and predicted) frames of the episodes that get a
video. The protocol is the release's (rynnvla_ros/libero/protocol.py): per task, trial ``i`` starts from the
benchmark's initial state ``i`` after ``i`` earlier resets of an environment seeded once; 10 wait steps; the suite's
max steps; whole chunks open-loop; lock-step (the simulator waits for every chunk, so the result does not depend on
the machine's speed).

Writes into ``--out``: ``results.json`` (settings, every episode, summaries; rewritten after each episode, so an
interrupted run resumes where it stopped), ``results.md`` (per-task table), ``report.md`` with ``success_rate.png``,
and ``videos/*.mp4`` of the chosen episodes (front | wrist | predicted front | predicted wrist).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rynnvla_ros.eval_graph import EvalError, ProfileGraph, call_service, wait_for_service
from rynnvla_ros.eval_results import VIDEO_CHOICES, ResultsError, check_resumable, keeps_video, records_video
from rynnvla_ros.libero.protocol import IMAGE_SIZE, SUITES, TRIALS_PER_TASK, WAIT_STEPS, suite_protocol
from rynnvla_ros.libero.results import EpisodeRecord, Results, write_report

RESUME_KEYS = ("model", "mode", "max_steps", "wait_steps", "replan_steps", "lockstep", "image_size")
PROTOCOL = (
    "RynnVLA-002's LIBERO protocol: per task one environment (256x256 agentview and wrist renders, both rotated "
    "180 degrees), seeded once; trial i = reset + the benchmark's initial state i (the i-th reset after seeding); "
    "10 steps of the dummy action [0,0,0,0,0,0,-1]; then up to max_steps policy steps (spatial 220, object 280, "
    "goal 300, libero_10 520, libero_90 400); 8-d state (eef position, axis-angle, gripper qpos); 7-d actions "
    "executed as predicted, whole chunks open-loop; success = the task's goal predicate after a step."
)


@dataclass
class EvalConfig:
    """What to evaluate and how (the command-line options)."""

    out: Path
    suites: list[str]
    checkpoint: str = ""
    official_checkpoint: str = ""
    tokenizer_dir: str = ""
    norm_stats: str = ""
    tasks: list[int] | None = None
    trials: int = TRIALS_PER_TASK
    seeds: list[int] = field(default_factory=lambda: [0])
    mode: str = "continuous"
    max_steps: int = 0
    wait_steps: int = WAIT_STEPS
    replan_steps: int = 0
    lockstep: bool = True
    world_model: bool = False
    videos: str = "first"
    device: str = "auto"
    image_size: int = IMAGE_SIZE
    fresh: bool = False
    stall_timeout: float = 600.0
    progress: bool = True

    def settings(self) -> dict[str, Any]:
        """The settings stored in results.json (those in RESUME_KEYS must match to resume)."""
        model = self.official_checkpoint or self.checkpoint
        return {
            "model": str(Path(model).expanduser().resolve()) if model else "",
            "official": bool(self.official_checkpoint),
            "mode": self.mode,
            "suites": list(self.suites),
            "tasks": "all" if self.tasks is None else list(self.tasks),
            "trials": self.trials,
            "seeds": list(self.seeds),
            "max_steps": {s: self.max_steps or suite_protocol(s).max_steps for s in self.suites},
            "wait_steps": self.wait_steps,
            "replan_steps": self.replan_steps,
            "lockstep": self.lockstep,
            "world_model": self.world_model,
            "image_size": self.image_size,
            "protocol": PROTOCOL,
        }


def task_count(suite: str) -> int:
    """Number of tasks of a LIBERO suite (reads the benchmark, not the simulator)."""
    from rynnvla_ros.libero.sim import prepare_libero_import

    prepare_libero_import()
    from libero.libero import benchmark

    suites = benchmark.get_benchmark_dict()
    if suite not in suites:
        raise EvalError(f"no LIBERO suite {suite!r}")
    return int(suites[suite]().get_num_tasks())


# ---------------------------------------------------------------------------------------------------- the graph
class EvalClient:
    """A node that selects episodes through the bridge and follows them (statuses, frames, predictions)."""

    def __init__(self, context: Any, check: Any = None) -> None:
        """``check()`` raises when the graph cannot progress (a child process died); called while waiting."""
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from sensor_msgs.msg import Image, JointState

        from rynnvla_ros import topics
        from rynnvla_ros.msg import EpisodeStatus
        from rynnvla_ros.srv import LiberoReset

        self.node = rclpy.create_node("libero_eval", context=context)
        self.check = check or (lambda: None)
        self.select = self.node.create_client(LiberoReset, "/libero_bridge/select")
        self._cond = threading.Condition()
        self.status: EpisodeStatus | None = None
        self.status_time = time.monotonic()
        self.recording = False
        self.frames: dict[str, dict[int, Any]] = {}
        self.states: dict[int, list[float]] = {}  # the newest few states by stamp
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(EpisodeStatus, topics.LIBERO_EPISODE_STATUS, self._on_status, latched)
        for name, topic in (
            ("front", topics.FRONT_IMAGE),
            ("wrist", topics.WRIST_IMAGE),
            ("predicted_front", topics.PREDICTED_FRONT_IMAGE),
            ("predicted_wrist", topics.PREDICTED_WRIST_IMAGE),
        ):
            self.node.create_subscription(Image, topic, lambda m, n=name: self._on_image(n, m), 50)
        self.node.create_subscription(JointState, topics.LIBERO_STATE, self._on_state, 50)

    def _on_status(self, msg: Any) -> None:
        with self._cond:
            self.status = msg
            self.status_time = time.monotonic()
            self._cond.notify_all()

    def _on_state(self, msg: Any) -> None:
        from rynnvla_ros.nodes.model_common import stamp_ns

        with self._cond:
            self.states[stamp_ns(msg.header.stamp)] = list(msg.position)
            while len(self.states) > 16:
                self.states.pop(min(self.states))
            self._cond.notify_all()

    def state_at(self, stamp: int, timeout: float = 5.0) -> list[float]:
        """The state published with ``stamp`` (waits up to ``timeout`` s for it); empty when it never came."""
        with self._cond:
            self._wait_for(lambda: stamp in self.states, timeout)
            return list(self.states.get(stamp, []))

    def _wait_for(self, predicate, timeout: float) -> None:
        """With ``self._cond`` held: wait until ``predicate()`` holds or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self._cond.wait(0.1)

    def _on_image(self, name: str, msg: Any) -> None:
        if not self.recording:
            return
        from rynnvla_ros.image_conversion import image_to_rgb
        from rynnvla_ros.nodes.model_common import stamp_ns

        rgb = image_to_rgb(msg)
        with self._cond:
            if self.recording:
                self.frames.setdefault(name, {})[stamp_ns(msg.header.stamp)] = rgb
                self._cond.notify_all()

    def start_episode(self, suite: str, task_id: int, init_state: int, seed: int, record: bool, timeout: float):
        """Select and reset (the bridge answers when the wait steps are done); the service's response."""
        from rynnvla_ros.srv import LiberoReset

        wait_for_service(self.select, timeout, self.check, "the libero_bridge ~/select service did not appear")
        with self._cond:
            self.frames = {}
            self.recording = record
        request = LiberoReset.Request(suite=suite, task_id=task_id, init_state=init_state, seed=seed)
        message = f"the bridge did not reset to {suite} task {task_id} state {init_state} in {timeout} s"
        response = call_service(self.select, request, timeout, self.check, message)
        if not response.success:
            raise EvalError(f"the bridge refused {suite} task {task_id} init state {init_state}: {response.message}")
        with self._cond:
            self.status_time = time.monotonic()
        return response

    def wait_done(self, episode: int, stall_timeout: float, on_step=None) -> Any:
        """Block until episode ``episode`` is done (and, when recording, its last front frame is in); EvalError when
        no status arrives for ``stall_timeout`` s."""
        from rynnvla_ros.nodes.model_common import stamp_ns

        last_step = -1
        with self._cond:
            while True:
                s = self.status
                if s is not None and s.episode == episode:
                    if on_step is not None and s.step != last_step:
                        on_step(s)
                        last_step = s.step
                    if s.done:
                        if self.recording:  # the last front frame shares the status's stamp but not its topic
                            last = stamp_ns(s.header.stamp)
                            self._wait_for(lambda last=last: last in self.frames.get("front", {}), 5.0)
                        self.recording = False
                        return s
                if time.monotonic() - self.status_time > stall_timeout:
                    self.recording = False
                    step = s.step if s is not None and s.episode == episode else 0
                    raise EvalError(
                        f"episode {episode} made no progress for {stall_timeout:g} s (at step {step}): is the policy "
                        "running and answering the bridge's chunk requests?"
                    )
                self._cond.wait(1.0)
                self.check()

    def take_frames(self) -> dict[str, dict[int, Any]]:
        with self._cond:
            frames, self.frames = self.frames, {}
            return frames


def start_graph(cfg: EvalConfig) -> ProfileGraph:
    """The libero profile's nodes and the client; the bridge (OWN_PROCESS: rendering and physics apart from model
    inference) runs as a child process."""
    args = {
        "suite": cfg.suites[0],
        "seed": str(cfg.seeds[0]),
        "lockstep": str(cfg.lockstep).lower(),
        "replan_steps": str(cfg.replan_steps),
        "policy": "true",
        "world_model": str(cfg.world_model).lower(),
        "checkpoint": cfg.checkpoint,
        "official_checkpoint": cfg.official_checkpoint,
        "tokenizer_dir": cfg.tokenizer_dir,
        "norm_stats": cfg.norm_stats,
        "mode": cfg.mode,
        "device": cfg.device,
    }
    bridge = {"autostart": False, "max_steps": cfg.max_steps, "wait_steps": cfg.wait_steps}
    bridge["image_size"] = cfg.image_size
    return ProfileGraph(
        "libero", args, lambda g: EvalClient(g.context, g.check_children), params={"libero_bridge": bridge}
    )


# ---------------------------------------------------------------------------------------------------- the run
def planned_episodes(cfg: EvalConfig) -> list[tuple[int, str, int, int]]:
    """(seed, suite, task, trial) of every episode of the run, in order; trial i uses initial state i."""
    plan = []
    for seed in cfg.seeds:
        for suite in cfg.suites:
            tasks = cfg.tasks if cfg.tasks is not None else list(range(task_count(suite)))
            for task_id in tasks:
                plan += [(seed, suite, task_id, trial) for trial in range(cfg.trials)]
    return plan


def _write_video(cfg: EvalConfig, record: EpisodeRecord, frames: dict[str, dict[int, Any]]) -> str:
    from rynnvla_ros.libero.video import compose_frames, write_mp4

    if not frames.get("front"):
        return ""
    images = compose_frames(
        frames["front"], frames.get("wrist", {}), frames.get("predicted_front"), frames.get("predicted_wrist")
    )
    name = f"{record.suite}_task{record.task_id:02d}_trial{record.trial:02d}_seed{record.seed}_{record.state}.mp4"
    write_mp4(images, cfg.out / "videos" / name)
    return f"videos/{name}"


def run_evaluation(cfg: EvalConfig) -> Results:
    """Run (or resume) the evaluation; returns the results, also written to ``cfg.out``."""
    for suite in cfg.suites:
        if suite not in SUITES and not cfg.max_steps:
            raise EvalError(f"suite {suite} has no official max_steps ({', '.join(SUITES)} have): pass --max-steps")
    if cfg.trials < 1 or not cfg.seeds or not cfg.suites:
        raise EvalError("need at least one suite, seed and trial")
    if cfg.official_checkpoint and not cfg.norm_stats:
        from rynnvla_model.action_tokenizer import libero_norm_stats

        cfg.out.mkdir(parents=True, exist_ok=True)
        cfg.norm_stats = str(libero_norm_stats().save(cfg.out / "libero_norm_stats.json"))
    settings = cfg.settings()
    stored = None if cfg.fresh else Results.load(cfg.out)
    if stored is not None:
        check_resumable(stored.settings, settings, RESUME_KEYS)
        results = Results(settings, stored.episodes)
    else:
        results = Results(settings)
    plan = planned_episodes(cfg)
    todo = [key for key in plan if key not in results.done()]
    done_before = len(plan) - len(todo)
    results.save(cfg.out)
    if not todo:
        write_report(results, cfg.out)
        return results

    from tqdm import tqdm

    graph = start_graph(cfg)
    bar = tqdm(total=len(plan), initial=done_before, unit="episode", disable=not cfg.progress, dynamic_ncols=True)
    try:
        for seed, suite, task_id, trial in todo:
            record = _run_episode(cfg, graph.client, seed, suite, task_id, trial, bar)
            results.add(record)
            results.save(cfg.out)
            write_report(results, cfg.out)
            successes = sum(e.success for e in results.episodes)
            bar.set_postfix_str(f"success {successes}/{len(results.episodes)}")
            bar.update(1)
    finally:
        bar.close()
        graph.close()
    return results


def _run_episode(cfg: EvalConfig, client: EvalClient, seed: int, suite: str, task_id: int, trial: int, bar) -> Any:
    from rynnvla_ros.nodes.model_common import stamp_ns

    record_frames = records_video(cfg.videos, trial)
    start = time.monotonic()
    # trial i <-> initial state i (the release's protocol)
    response = client.start_episode(suite, task_id, trial, seed, record_frames, cfg.stall_timeout)

    def on_step(status: Any) -> None:
        bar.set_description_str(f"{suite} task {task_id} trial {trial} step {status.step}/{status.max_steps}")

    status = client.wait_done(response.episode, cfg.stall_timeout, on_step)
    record = EpisodeRecord(
        seed=seed,
        suite=suite,
        task_id=task_id,
        trial=trial,
        task=status.task,
        init_state=int(status.init_state),
        success=bool(status.success),
        state=status.state,
        steps=int(status.step),
        max_steps=int(status.max_steps),
        wait_steps=int(status.wait_steps),
        chunks=int(status.chunks),
        message=status.message,
        wall_time_s=time.monotonic() - start,
        final_state=client.state_at(stamp_ns(status.header.stamp)),
    )
    frames = client.take_frames()
    if keeps_video(cfg.videos, trial, record.success):
        record.video = _write_video(cfg, record, frames)
    return record


# ---------------------------------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None = None) -> EvalConfig:
    parser = argparse.ArgumentParser(
        prog="rynnvla-eval-libero",
        description="Evaluate a RynnVLA checkpoint on LIBERO through the ROS graph (libero_bridge + policy).",
        epilog=PROTOCOL,
    )
    parser.add_argument("--suite", action="append", dest="suites", help="task suite (repeatable); libero_goal")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", default="", help="checkpoint directory saved by rynnvla_model")
    model.add_argument("--official-checkpoint", default="", help="official RynnVLA-002 LIBERO checkpoint directory")
    parser.add_argument("--tokenizer-dir", default="", help="official checkpoints: chameleon/tokenizer folder")
    parser.add_argument("--norm-stats", default="", help="official checkpoints: norm_stats.json (default: LIBERO's)")
    parser.add_argument("--tasks", type=int, nargs="+", help="task indices (default: every task of each suite)")
    parser.add_argument("--trials", type=int, default=TRIALS_PER_TASK, help="trials per task (trial i: init state i)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="simulator seeds (the release: 0)")
    parser.add_argument("--mode", choices=("continuous", "discrete"), default="continuous", help="action decoding")
    parser.add_argument("--max-steps", type=int, default=0, help="policy steps per trial (0: the suite's official)")
    parser.add_argument("--wait-steps", type=int, default=WAIT_STEPS, help="dummy-action steps after each reset")
    parser.add_argument("--replan-steps", type=int, default=0, help="rows executed per chunk (0: the whole chunk)")
    parser.add_argument("--realtime", action="store_true", help="real-time simulation instead of lock-step")
    parser.add_argument("--world-model", action="store_true", help="also run the world model (predicted frames)")
    parser.add_argument("--videos", choices=VIDEO_CHOICES, default="first", help="episodes that get a video")
    parser.add_argument("--device", default="auto", help="model device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE, help="render size (the release: 256)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (an existing run there is resumed)")
    parser.add_argument("--fresh", action="store_true", help="ignore the results already in --out")
    parser.add_argument("--stall-timeout", type=float, default=600.0, help="s without progress before giving up")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = parser.parse_args(argv)
    if a.official_checkpoint and not a.tokenizer_dir:
        parser.error("--official-checkpoint needs --tokenizer-dir")
    return EvalConfig(
        out=a.out,
        suites=a.suites or ["libero_goal"],
        checkpoint=a.checkpoint,
        official_checkpoint=a.official_checkpoint,
        tokenizer_dir=a.tokenizer_dir,
        norm_stats=a.norm_stats,
        tasks=a.tasks,
        trials=a.trials,
        seeds=a.seeds,
        mode=a.mode,
        max_steps=a.max_steps,
        wait_steps=a.wait_steps,
        replan_steps=a.replan_steps,
        lockstep=not a.realtime,
        world_model=a.world_model,
        videos=a.videos,
        device=a.device,
        image_size=a.image_size,
        fresh=a.fresh,
        stall_timeout=a.stall_timeout,
        progress=not a.no_progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rynnvla-eval-libero``."""
    cfg = parse_args(argv)
    try:
        results = run_evaluation(cfg)
    except (EvalError, ResultsError, ValueError, RuntimeError) as exc:
        print(f"rynnvla-eval-libero: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rynnvla-eval-libero: interrupted; run the same command again to resume ({cfg.out})", file=sys.stderr)
        return 130
    for suite, s in results.per_suite().items():
        print(f"{suite}: {s['successes']}/{s['trials']} = {100 * s['rate']:.1f} %")
    print(f"report: {cfg.out / 'report.md'}")
    return 0
