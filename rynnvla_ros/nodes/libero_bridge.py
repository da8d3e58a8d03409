"""``libero_bridge`` node: a LIBERO task in the ROS graph - camera frames, state and task out, action chunks in.

The simulator runs on its own thread (rynnvla_ros/libero/episode.py: the protocol's resets, wait steps, open-loop
chunks, episode bookkeeping). Every observation is published with the simulation time as its stamp, and that time
on ``/clock`` (nodes with ``use_sim_time`` follow it): 0.05 s per simulator step, a jump of ``reset_gap`` at every
reset (the wait steps publish nothing, so the first query of an episode has no history frame, as in the release).

Modes (parameter lockstep):
  lockstep  (deterministic, for evaluation) whenever the episode needs actions the bridge publishes the observation
            and a ChunkRequest with its stamp, then waits for the ActionChunk stamped exactly so (other chunks are
            ignored and counted). It executes the chunk's rows (all of them open-loop, or the first ``replan_steps``)
            and asks again. Nothing depends on wall-clock rates: while no answer comes, the observation and request
            are repeated every ``request_period`` s (the policy ignores requests it has answered).
  realtime  the simulator steps at ``rate`` Hz whether or not the policy keeps up; each new chunk replaces the
            rows left, skipping the rows whose time (stamp + i * dt) has passed; with no row due it holds (no
            motion, last gripper command). The policy runs on every frame (its trigger ``frame``).

An episode ends on success (the task's goal predicate, checked by every env.step), after ``max_steps`` policy
steps, or on a simulator error; the bridge then waits for a reset (``auto_reset`` starts the next initial state).

Topics (relative names; the libero profile remaps them to rynnvla_ros.topics):
  front/image_raw    sensor_msgs/Image          out: agentview, rgb8, image_size^2, rotated 180 degrees when flip
  wrist/image_raw    sensor_msgs/Image          out: eye-in-hand camera, the same
  state              sensor_msgs/JointState     out: the 8-d state, one named entry per dimension (eef_x eef_y eef_z
                                                eef_axis_angle_x/y/z gripper_left gripper_right: m, rad, m)
  task               std_msgs/String            out, transient-local: the task's instruction at every reset
  chunk_request      rynnvla_ros/ChunkRequest   out (lockstep): the observation stamp to answer, and the task
  action_chunk       rynnvla_ros/ActionChunk    in: eef_delta_gripper, names x y z rx ry rz gripper, not dry_run
  episode_status     rynnvla_ros/EpisodeStatus  out, transient-local: every step and every change
  /clock             rosgraph_msgs/Clock        out: simulation time (publish_clock)
  /diagnostics       diagnostic_msgs/DiagnosticArray  out: episode, steps, step time, waiting time, rejections

Services:
  ~/reset            std_srvs/Trigger           reset to the current selection (answers when the wait steps are done)
  ~/select           rynnvla_ros/LiberoReset    select suite, task, initial state and seed, and reset to them

Parameters:
  suite (str, libero_goal), task_id (int, 0), init_state (int, 0), seed (int, 0)  the first episode
  lockstep (bool, true)         lock-step (true) or real-time (false) mode
  replan_steps (int, 0)        rows executed per chunk in lockstep; 0: the whole chunk (the release's protocol)
  max_steps (int, 0)           policy steps per episode; 0: the suite's official value (220/280/300/520/400)
  wait_steps (int, -1)         dummy-action steps after a reset; -1: the official 10
  image_size (int, 256)        render size (the release: 256)
  flip (bool, true)            rotate both images by 180 degrees (the release's convention)
  rate (float, 20.0)           Hz of simulator steps in realtime mode (LIBERO's control frequency)
  autostart (bool, true)       reset to the parameters' selection at start
  auto_reset (bool, false)     after an episode, reset to the next initial state
  request_period (float, 2.0)  s between repeats of an unanswered request (lockstep)
  reset_gap (float, 1.0)       simulation seconds between episodes
  publish_clock (bool, true)   publish /clock
  diagnostics_period (float, 1.0)  s between /diagnostics messages
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rynnvla_model.data.libero import STATE_NAMES
from rynnvla_ros.control.rate import RateMeter
from rynnvla_ros.diagnostics import diagnostic_status
from rynnvla_ros.image_conversion import array_to_image
from rynnvla_ros.inference.chunks import Chunk, ChunkError
from rynnvla_ros.inference.observation import Rejections
from rynnvla_ros.inference.stats import RollingStats
from rynnvla_ros.libero.episode import NS, Episode, EpisodeRunner, Selection
from rynnvla_ros.libero.protocol import ACTION_NAMES, ACTION_SPACE, FRONT_CAMERA, WRIST_CAMERA
from rynnvla_ros.libero.sim import Observation
from rynnvla_ros.msg import ActionChunk, ChunkRequest, EpisodeStatus
from rynnvla_ros.nodes.model_common import chunk_from_msg, to_stamp
from rynnvla_ros.srv import LiberoReset

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RESET_TIMEOUT = 900.0  # s a service call waits for a reset (making an environment and replaying resets is slow)


@dataclass
class _ResetJob:
    selection: Selection
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    message: str = ""
    episode: Episode | None = None


class LiberoBridgeNode(Node):
    """Thin ROS shell around :class:`EpisodeRunner`: a simulator thread, publishers, chunk gate and services."""

    OWN_PROCESS = True  # rynnvla-bringup and rynnvla-eval-libero run the simulator apart from model inference

    def __init__(self, **kwargs) -> None:
        super().__init__("libero_bridge", **kwargs)
        p = {
            name: self.declare_parameter(name, default).value
            for name, default in (
                ("suite", "libero_goal"),
                ("task_id", 0),
                ("init_state", 0),
                ("seed", 0),
                ("lockstep", True),
                ("replan_steps", 0),
                ("max_steps", 0),
                ("wait_steps", -1),
                ("image_size", 256),
                ("flip", True),
                ("rate", 20.0),
                ("autostart", True),
                ("auto_reset", False),
                ("request_period", 2.0),
                ("reset_gap", 1.0),
                ("publish_clock", True),
                ("diagnostics_period", 1.0),
            )
        }
        self.mode = "lockstep" if p["lockstep"] else "realtime"
        for name in ("rate", "request_period", "diagnostics_period"):
            if not float(p[name]) > 0:
                raise ValueError(f"{name} must be > 0, got {p[name]}")
        self.selection = Selection(str(p["suite"]), int(p["task_id"]), int(p["init_state"]), int(p["seed"]))
        self.runner = EpisodeRunner(
            image_size=int(p["image_size"]),
            flip=bool(p["flip"]),
            replan_steps=int(p["replan_steps"]),
            max_steps=int(p["max_steps"]),
            wait_steps=int(p["wait_steps"]),
            reset_gap=float(p["reset_gap"]),
        )
        self.runner.limits(self.selection.suite)  # an unknown suite without max_steps fails here, at start
        self.period = 1.0 / float(p["rate"])
        self.request_period = float(p["request_period"])
        self.auto_reset = bool(p["auto_reset"])
        self.publish_clock = bool(p["publish_clock"])

        self._cond = threading.Condition()
        self._jobs: list[_ResetJob] = []
        self._chunk: Chunk | None = None  # newest accepted chunk not yet loaded
        self._awaiting: int | None = None  # lockstep: the stamp of the observation whose chunk is awaited
        self._closed = False
        self.rejections = Rejections()
        self.step_time = RollingStats()
        self.wait_time = RollingStats()
        self.step_rate = RateMeter(window=5.0)
        self.requests = 0
        self.last_error = ""
        self._requested_at = 0.0  # monotonic time of the current request (first send), and of its last repeat
        self._repeated_at = 0.0
        self._next_tick = 0.0  # realtime: monotonic time of the next step

        qos = 10
        self.front_pub = self.create_publisher(Image, "front/image_raw", qos)
        self.wrist_pub = self.create_publisher(Image, "wrist/image_raw", qos)
        self.state_pub = self.create_publisher(JointState, "state", qos)
        self.task_pub = self.create_publisher(String, "task", LATCHED)
        self.request_pub = self.create_publisher(ChunkRequest, "chunk_request", qos)
        self.status_pub = self.create_publisher(EpisodeStatus, "episode_status", LATCHED)
        self.clock_pub = self.create_publisher(Clock, "/clock", qos)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos)
        self.create_subscription(
            ActionChunk, "action_chunk", self._on_chunk, 10, callback_group=MutuallyExclusiveCallbackGroup()
        )
        services = ReentrantCallbackGroup()  # a reset call waits for the simulator thread
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=services)
        self.create_service(LiberoReset, "~/select", self._on_select, callback_group=services)
        self.create_timer(float(p["diagnostics_period"]), self._publish_diagnostics, MutuallyExclusiveCallbackGroup())
        self._publish_status()
        if p["autostart"]:
            self._jobs.append(_ResetJob(self.selection))
        self._thread = threading.Thread(target=self._run, name="libero-sim", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"{self.mode}: {self.selection.suite} task {self.selection.task_id} init state "
            f"{self.selection.init_state} seed {self.selection.seed}; images {self.runner.image_size} px"
            f"{' rotated 180 deg' if self.runner.flip else ''}; chunks: "
            + (f"{self.runner.player.replan_steps} rows each" if self.runner.player.replan_steps else "whole")
            + ("" if p["autostart"] else "; waiting for a reset")
        )

    # ------------------------------------------------------------------------------------------ inputs
    def _reject(self, key: str, message: str) -> None:
        if self.rejections.add(key, message):
            self.get_logger().warning(f"{message} [{key}: {self.rejections.counts[key]} so far]")

    def _on_chunk(self, msg: ActionChunk) -> None:
        try:
            chunk = chunk_from_msg(msg)
        except ChunkError as exc:
            self._reject("bad_chunk", f"action chunk rejected: {exc}")
            return
        if chunk.space != ACTION_SPACE or chunk.names != ACTION_NAMES:
            self._reject(
                "wrong_action_space",
                f"action chunk rejected: LIBERO takes {ACTION_SPACE} chunks named {' '.join(ACTION_NAMES)}, got "
                f"{chunk.space} named {' '.join(chunk.names)}",
            )
            return
        if msg.dry_run:
            self._reject("dry_run", "dry-run chunk ignored: run the policy with dry_run false")
            return
        with self._cond:
            if self.mode == "lockstep" and chunk.stamp != self._awaiting:
                self._reject("unrequested_chunk", "chunk ignored: it answers no pending request (an old one?)")
                return
            self._chunk = chunk
            self._cond.notify_all()

    def _reset_job(self, selection: Selection) -> _ResetJob:
        job = _ResetJob(selection)
        with self._cond:
            self._jobs.append(job)
            self._cond.notify_all()
        if not job.done.wait(RESET_TIMEOUT):
            job.message = f"the reset did not finish within {RESET_TIMEOUT:g} s"
        return job

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        job = self._reset_job(self.selection)
        response.success, response.message = job.ok, job.message
        return response

    def _on_select(self, request: LiberoReset.Request, response: LiberoReset.Response) -> LiberoReset.Response:
        current = self.selection
        selection = Selection(
            request.suite.strip() or current.suite,
            request.task_id if request.task_id >= 0 else current.task_id,
            request.init_state if request.init_state >= 0 else current.init_state,
            request.seed if request.seed >= 0 else current.seed,
        )
        job = self._reset_job(selection)
        response.success, response.message = job.ok, job.message
        if job.episode is not None:
            response.episode = job.episode.number
            response.task = job.episode.task
            response.max_steps = job.episode.max_steps
            response.wait_steps = job.episode.wait_steps
        return response

    # ------------------------------------------------------------------------------------------ simulator thread
    def _run(self) -> None:
        handlers = {
            "chunk": self._execute_chunk,
            "repeat": lambda: self._request_chunk(repeat=True),
            "tick": self._tick,
        }
        try:
            while True:
                with self._cond:
                    job = self._next_job()
                if job is None:
                    return
                try:
                    if isinstance(job, _ResetJob):
                        self._do_reset(job)
                    else:
                        handlers[job]()
                except Exception as exc:  # keep the thread alive; the episode (if any) ends as an error
                    self.last_error = f"{job if isinstance(job, str) else 'reset'} failed: {type(exc).__name__}: {exc}"
                    self.get_logger().error(self.last_error)
                    episode = self.runner.episode
                    if episode is not None and not episode.done:
                        episode.fail(self.last_error)
                        self._publish_status()
        finally:
            self.runner.close()  # the renderer is freed by the thread that made it

    def _next_job(self) -> _ResetJob | str | None:
        """Wait (holding the condition) for the next thing to do: a reset, a chunk, a repeated request (lockstep)
        or a step (realtime); None when closed."""
        while not self._closed:
            if self._jobs:
                return self._jobs.pop(0)
            running = self.runner.episode is not None and not self.runner.episode.done
            if not running:
                self._cond.wait()
                continue
            now = time.monotonic()
            if self.mode == "realtime":
                if now >= self._next_tick:
                    self._next_tick = max(self._next_tick + self.period, now)  # late: no burst of steps
                    return "tick"
                self._cond.wait(self._next_tick - now)
                continue
            if self._chunk is not None:
                return "chunk"
            if self._awaiting is not None and now >= self._repeated_at + self.request_period:
                return "repeat"
            self._cond.wait(max(self._repeated_at + self.request_period - now, 0.01))
        return None

    def _do_reset(self, job: _ResetJob) -> None:
        episode = self.runner.episode
        if episode is not None and not episode.done:
            episode.fail("interrupted by a reset")
            self._publish_status()
        with self._cond:
            self._chunk, self._awaiting = None, None
        self._publish_resetting(job.selection)
        try:
            obs = self.runner.reset(job.selection)
        except Exception as exc:
            job.message = f"reset to {job.selection} failed: {type(exc).__name__}: {exc}"
            self.last_error = job.message
            self.get_logger().error(job.message)
            self._publish_status()
            job.done.set()
            return
        self.selection = job.selection
        episode = self.runner.episode
        job.ok, job.episode = True, episode
        job.message = (
            f"episode {episode.number}: {episode.suite} task {episode.task_id} ({episode.task!r}), init state "
            f"{episode.init_state}, seed {episode.seed}, max {episode.max_steps} steps after {episode.wait_steps}"
        )
        self.get_logger().info(job.message)
        self.task_pub.publish(String(data=episode.task))
        job.done.set()
        self._publish_observation(obs)
        self._publish_status()
        self._next_tick = time.monotonic() + self.period
        if self.mode == "lockstep":
            self._request_chunk()

    def _request_chunk(self, repeat: bool = False) -> None:
        """Publish the current observation's request (and, when repeating, the observation again)."""
        if not self.runner.needs_chunk:
            return
        stamp = self.runner.stamp
        with self._cond:
            self._awaiting = stamp
        if repeat:
            self._publish_observation(self.runner.observation)
            self.get_logger().info(
                f"no chunk for the observation at {stamp / NS:.2f} s yet; repeating the request",
                throttle_duration_sec=10.0,
            )
        else:
            self._requested_at = time.monotonic()
        self._repeated_at = time.monotonic()
        request = ChunkRequest(task=self.runner.episode.task)
        request.header.stamp = to_stamp(stamp)
        self.request_pub.publish(request)
        self.requests += 1

    def _execute_chunk(self) -> None:
        with self._cond:
            chunk, self._chunk, self._awaiting = self._chunk, None, None
        if chunk is None:
            return
        self.wait_time.add(time.monotonic() - self._requested_at)
        self.runner.load_chunk(chunk.rows)
        while not self.runner.player.empty and not self.runner.episode.done:
            with self._cond:
                if self._jobs or self._closed:
                    return  # a reset preempts the rest of the chunk
            self._step()
        if not self.runner.episode.done:
            self._request_chunk()

    def _tick(self) -> None:
        """Realtime: load the newest chunk (rows already due skipped), execute one step, keep the rate."""
        with self._cond:
            chunk, self._chunk = self._chunk, None
        if chunk is not None:
            skip = int(np.floor((self.runner.stamp - chunk.stamp) / (chunk.dt * NS) + 1e-6)) - chunk.start_step
            if skip < chunk.horizon:
                self.runner.load_chunk(chunk.rows, max(skip, 0))
            else:
                self._reject("late_chunk", f"chunk ignored: all its {chunk.horizon} rows are past")
        self._step(hold_when_empty=True)

    def _step(self, hold_when_empty: bool = False) -> None:
        start = time.monotonic()
        try:
            obs = self.runner.step(hold_when_empty)
        except Exception as exc:
            self.last_error = f"simulator step failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(self.last_error)
            self._publish_status()
            self._after_episode()
            return
        self.step_time.add(time.monotonic() - start)
        self.step_rate.tick(time.monotonic())
        self._publish_observation(obs)
        self._publish_status()
        if self.runner.episode.done:
            self._after_episode()

    def _after_episode(self) -> None:
        episode = self.runner.episode
        self.get_logger().info(f"episode {episode.number} {episode.state}: {episode.message}")
        if self.auto_reset and self.runner.env is not None:
            nxt = (episode.init_state + 1) % self.runner.env.num_init_states
            s = self.selection
            with self._cond:
                self._jobs.append(_ResetJob(Selection(s.suite, s.task_id, nxt, s.seed)))

    # ------------------------------------------------------------------------------------------ outputs
    def _publish_observation(self, obs: Observation) -> None:
        stamp = to_stamp(self.runner.stamp)
        if self.publish_clock:
            self.clock_pub.publish(Clock(clock=stamp))
        state = JointState(name=list(STATE_NAMES), position=obs.state.tolist())
        state.header.stamp = stamp
        self.state_pub.publish(state)
        for pub, pixels, frame in (
            (self.wrist_pub, obs.wrist, WRIST_CAMERA),
            (self.front_pub, obs.front, FRONT_CAMERA),
        ):
            img = array_to_image(pixels, "rgb8")
            img.header.stamp = stamp
            img.header.frame_id = frame
            pub.publish(img)

    def _publish_status(self) -> None:
        msg = EpisodeStatus(state="idle")
        msg.header.stamp = to_stamp(self.runner.stamp)
        e = self.runner.episode
        if e is not None:
            msg.state, msg.episode, msg.suite, msg.task_id, msg.task = e.state, e.number, e.suite, e.task_id, e.task
            msg.init_state, msg.seed, msg.step, msg.max_steps = e.init_state, e.seed, e.step, e.max_steps
            msg.wait_steps, msg.chunks, msg.done, msg.success, msg.message = (
                e.wait_steps, e.chunks, e.done, e.success, e.message,
            )  # fmt: skip
        self.status_pub.publish(msg)

    def _publish_resetting(self, selection: Selection) -> None:
        msg = EpisodeStatus(state=EpisodeStatus.STATE_RESETTING, episode=self.runner.episodes + 1)
        msg.header.stamp = to_stamp(self.runner.stamp)
        msg.suite, msg.task_id, msg.init_state, msg.seed = (
            selection.suite, max(selection.task_id, 0), max(selection.init_state, 0), selection.seed,
        )  # fmt: skip
        self.status_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        e = self.runner.episode
        rate = self.step_rate.rate(time.monotonic())
        if self.last_error and (e is None or e.done):
            level, message = DiagnosticStatus.ERROR, self.last_error
        elif e is None:
            level, message = DiagnosticStatus.WARN, "no episode yet"
        elif e.done:
            level, message = DiagnosticStatus.OK, f"episode {e.number} {e.state}; waiting for a reset"
        else:
            waiting = " (waiting for a chunk)" if self._awaiting is not None else ""
            level, message = DiagnosticStatus.OK, f"episode {e.number} step {e.step}/{e.max_steps}{waiting}"
        values: dict = {"mode": self.mode, "episodes": self.runner.episodes, "chunk_requests": self.requests}
        if e is not None:
            values |= {"suite": e.suite, "task_id": e.task_id, "init_state": e.init_state, "step": e.step}
            values |= {"chunks": e.chunks, "state": e.state}
        values["step_rate_hz"] = rate
        if self.mode == "realtime":
            values["target_rate_hz"] = 1.0 / self.period
        values.update({f"step_s_{k}": v for k, v in self.step_time.summary().items()})
        values.update({f"chunk_wait_s_{k}": v for k, v in self.wait_time.summary().items()})
        values.update({f"rejected_{k}": v for k, v in sorted(self.rejections.counts.items())})
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [diagnostic_status(f"rynnvla_ros: {self.get_name()}", "libero", level, message, values)]
        self.diag_pub.publish(array)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the simulator thread (it closes the environment)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.message = "the bridge is shutting down"
            job.done.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
