"""``so100_expert`` node: a scripted leader arm that performs the simulated block-in-circle task.

For each episode it asks ``so100_controller`` (sim) for a new layout (``~/reset_task`` with seed ``seed + i``),
waits ``settle_time``, plans the pick and place from the measured joints with :class:`ScriptedExpert`, and plays
the plan as ``so100_leader_teleop`` plays a human's leader arm: the target as the leader's joint state (the action of
a recorded demonstration) and as a trajectory, which the controller executes through its safety filter. Unlike a
leader arm the expert knows its future, so each trajectory holds the next ``horizon`` s of the plan from
``lookahead`` on: a message delayed by a busy machine still has points ahead of the controller's clock. With
``execution_noise`` > 0 the trajectory (what the arm does) carries a smooth random offset that vanishes where the
jaws work the block (:class:`~rynnvla_ros.tasks.expert.ExecutionNoise`), while the leader's joint state (what is
recorded as the action) stays the plan: the demonstrations then show how to get back onto it. With
``record`` it wraps every episode in the recorder's services: successful episodes are kept, failed ones discarded.
It ends the process when ``episodes`` are done (``exit_when_done``), or when it cannot go on (a service missing or
refusing): then ``exit_code`` is 1, which ``rynnvla-bringup`` and the node's executable return.

Topics (relative; the record profile remaps them):
  joint_states      sensor_msgs/JointState           in: the follower's measured joints (topics.JOINT_STATES)
  task_state        rynnvla_ros/TaskState            in: the simulated task (success)
  leader_joint_states  sensor_msgs/JointState        out, at rate while an episode plays: the expert's target
  joint_trajectory  trajectory_msgs/JointTrajectory  out, at rate while an episode plays: the plan from lookahead
                                                   to lookahead + horizon, a point every point_period

Services used: <controller>/reset_task (rynnvla_ros/TaskReset); with record, <recorder>/start_episode,
<recorder>/stop_episode, <recorder>/discard_episode.

Parameters:
  episodes (int, 100)           episodes to run (0: until stopped)
  seed (int, 0)                 seed of the first episode's layout; episode i uses seed + i
  record (bool, true)           record each episode through the recorder node
  controller (str, "/so100_controller")  node whose ~/reset_task lays out the task
  recorder (str, "/recorder")   node whose episode services record
  rate (float, 50.0)            Hz of the published targets
  lookahead (float, 0.1)        s after publishing at which the first trajectory point is due
  horizon (float, 0.5)          s of plan after the first point in each trajectory
  point_period (float, 0.1)     s between trajectory points
  settle_time (float, 2.5)      s between a reset and the start of motion (the controller's ramp-in, fresh frames)
  end_time (float, 1.0)         s after the plan ends before success is read
  service_timeout (float, 10.0) s to wait for a service answer
  reset_attempts (int, 3)       tries of a task reset that gets no answer in time (the same seed lays out the same
                                task, so a retry is safe; a busy machine can stall the controller for seconds)
  exit_when_done (bool, true)   shut the process down after the last episode
  scene (str, "")               MJCF scene of the twin to plan on (empty: the package's; as so100_controller's)
  execution_noise (float, 0.0)  rad, standard deviation of the offset added to the executed joints 0-4 (0: none)
  noise_period (float, 0.5)     s, correlation time of that offset
  noise_fade (float, 1.0)       s over which it falls to 0 before the jaws reach the block or the circle
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.chunk_schedule import ChunkRejected, joint_order
from rynnvla_ros.control.sim_backend import build_model
from rynnvla_ros.msg import TaskState
from rynnvla_ros.srv import StartEpisode, TaskReset
from rynnvla_ros.tasks.block_in_circle import Layout
from rynnvla_ros.tasks.expert import ExecutionNoise, ExpertPlan, ScriptedExpert


class ExpertError(RuntimeError):
    """An episode could not be run (a service is missing or refused)."""


class So100ExpertNode(Node):
    """Runs scripted demonstrations of the simulated task (see the module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("so100_expert", **kwargs)
        p = {
            name: self.declare_parameter(name, value).value
            for name, value in {
                "episodes": 100,
                "seed": 0,
                "record": True,
                "controller": "/so100_controller",
                "recorder": "/recorder",
                "rate": 50.0,
                "lookahead": 0.1,
                "horizon": 0.5,
                "point_period": 0.1,
                "settle_time": 2.5,
                "end_time": 1.0,
                "service_timeout": 10.0,
                "reset_attempts": 3,
                "exit_when_done": True,
                "scene": "",
                "execution_noise": 0.0,
                "noise_period": 0.5,
                "noise_fade": 1.0,
            }.items()
        }
        if min(p["rate"], p["lookahead"], p["point_period"]) <= 0 or p["horizon"] < 0 or p["episodes"] < 0:
            raise ValueError("rate, lookahead and point_period must be > 0, horizon and episodes >= 0")
        ExecutionNoise.check(p["execution_noise"], p["noise_period"], p["noise_fade"])
        if p["reset_attempts"] < 1:
            raise ValueError(f"reset_attempts must be >= 1, got {p['reset_attempts']}")
        n_points = round(p["horizon"] / p["point_period"]) + 1
        self.point_times = p["lookahead"] + p["point_period"] * np.arange(n_points)
        self.p = p
        self.expert = ScriptedExpert(build_model(p["scene"] or None))
        self._lock = threading.Lock()
        self._joints: tuple[float, np.ndarray] | None = None  # (monotonic receive time, positions)
        self._task: tuple[float, TaskState] | None = None
        # (monotonic start, plan, executed offset or None) while an episode plays
        self._plan: tuple[float, ExpertPlan, ExecutionNoise | None] | None = None
        self.results: list[tuple[int, bool]] = []  # (seed, success)
        self.exit_code = 0  # 1 once the demonstrations stopped on an error

        qos = QoSProfile(depth=10)
        services = ReentrantCallbackGroup()
        self.create_subscription(JointState, "joint_states", self._on_joints, qos)
        self.create_subscription(TaskState, "task_state", self._on_task, qos)
        self.leader_pub = self.create_publisher(JointState, "leader_joint_states", qos)
        self.trajectory_pub = self.create_publisher(JointTrajectory, "joint_trajectory", qos)
        self.reset_client = self.create_client(TaskReset, f"{p['controller']}/reset_task", callback_group=services)
        rec = p["recorder"]
        self.start_client = self.create_client(StartEpisode, f"{rec}/start_episode", callback_group=services)
        self.stop_client = self.create_client(Trigger, f"{rec}/stop_episode", callback_group=services)
        self.discard_client = self.create_client(Trigger, f"{rec}/discard_episode", callback_group=services)
        self.create_timer(1.0 / p["rate"], self._publish_target)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="expert-episodes", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------ inputs
    def _on_joints(self, msg: JointState) -> None:
        try:
            q = np.asarray(msg.position, dtype=float)[joint_order(msg.name)]
        except (ChunkRejected, IndexError):
            return  # not the arm's joint state; the controller always sends all six
        with self._lock:
            self._joints = (time.monotonic(), q)

    def _on_task(self, msg: TaskState) -> None:
        with self._lock:
            self._task = (time.monotonic(), msg)

    # ------------------------------------------------------------------------------------------ output
    def _publish_target(self) -> None:
        with self._lock:
            playing = self._plan
        if playing is None:
            return
        start, plan, noise = playing
        t = time.monotonic() - start
        stamp = self.get_clock().now()
        state = JointState(name=list(desc.JOINT_NAMES), position=[float(v) for v in plan.at(t)])
        state.header.stamp = stamp.to_msg()
        self.leader_pub.publish(state)
        trajectory = JointTrajectory(joint_names=list(desc.JOINT_NAMES))
        trajectory.header.stamp = stamp.to_msg()
        due = t + self.point_times
        executed = plan.at(due)
        if noise is not None:
            executed += noise.at(due)
        for offset, q in zip(self.point_times, executed, strict=True):
            point = JointTrajectoryPoint(positions=[float(v) for v in q])
            point.time_from_start = Duration(seconds=float(offset)).to_msg()
            trajectory.points.append(point)
        self.trajectory_pub.publish(trajectory)

    # ------------------------------------------------------------------------------------------ episodes
    def _call(self, client, request, what: str):
        timeout = float(self.p["service_timeout"])
        if not client.wait_for_service(timeout_sec=timeout):
            raise ExpertError(f"service {client.srv_name} is not available ({what})")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline or self._stop.is_set():
                raise ExpertError(f"service {client.srv_name} did not answer within {timeout:g} s ({what})")
            time.sleep(0.01)
        return future.result()

    def _wait(self, seconds: float) -> bool:
        """Sleep; False when the node is closing."""
        return not self._stop.wait(seconds)

    def _joints_after(self, since: float, timeout: float = 5.0) -> np.ndarray:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._joints is not None and self._joints[0] > since:
                    return self._joints[1].copy()
            if not self._wait(0.02):
                break
        raise ExpertError(f"no joint state from the controller within {timeout:g} s")

    def _reset(self, seed: int) -> TaskReset.Response:
        """The controller's answer to a reset to ``seed``, asked up to ``reset_attempts`` times."""
        attempts = int(self.p["reset_attempts"])
        request = TaskReset.Request(seed=seed)
        for attempt in range(2, attempts + 1):
            try:
                return self._call(self.reset_client, request, "task reset")
            except ExpertError as exc:
                if self._stop.is_set():
                    raise
                self.get_logger().warning(f"{exc}; asking again (attempt {attempt}/{attempts})")
        return self._call(self.reset_client, request, "task reset")

    def run_episode(self, seed: int) -> bool:
        """Lay out, (record,) play and judge one episode; whether the block ended inside the circle."""
        reset = self._reset(seed)
        if not reset.success:
            raise ExpertError(f"the controller refused the task reset: {reset.message}")
        layout = Layout((reset.block[0], reset.block[1]), reset.block[2], (reset.target[0], reset.target[1]))
        if not self._wait(self.p["settle_time"]):
            return False
        plan = self.expert.plan(self._joints_after(time.monotonic() - 0.05), layout)
        std = float(self.p["execution_noise"])
        noise = ExecutionNoise(plan, std, self.p["noise_period"], seed, self.p["noise_fade"]) if std > 0 else None
        record = bool(self.p["record"])
        if record:
            started = self._call(self.start_client, StartEpisode.Request(task=reset.task), "start recording")
            if not started.success:
                raise ExpertError(f"the recorder did not start an episode: {started.message}")
        with self._lock:
            self._plan = (time.monotonic(), plan, noise)
        finished = self._wait(plan.duration + self.p["end_time"])
        judged = time.monotonic()
        with self._lock:
            self._plan = None
        success = False
        if finished:
            while time.monotonic() < judged + 2.0 and not self._stop.is_set():
                with self._lock:
                    task = self._task
                if task is not None and task[0] > judged and task[1].seed == seed:
                    success = bool(task[1].success)
                    break
                time.sleep(0.02)
        if record:
            client = self.stop_client if success else self.discard_client
            answer = self._call(client, Trigger.Request(), "stop recording" if success else "discard recording")
            if not answer.success:
                self.get_logger().warning(f"recorder: {answer.message}")
        return success

    def _run(self) -> None:
        n = int(self.p["episodes"])
        i = 0
        try:
            self._joints_after(0.0, timeout=60.0)  # the controller's arm is up (the simulation may take a while)
            while (n == 0 or i < n) and not self._stop.is_set():
                seed = int(self.p["seed"]) + i
                success = self.run_episode(seed)
                if self._stop.is_set():
                    break
                self.results.append((seed, success))
                done = sum(s for _, s in self.results)
                self.get_logger().info(
                    f"episode {i + 1}{'/' + str(n) if n else ''} (seed {seed}): "
                    f"{'success' if success else 'failed'}; {done}/{len(self.results)} successful so far"
                )
                i += 1
        except Exception as exc:  # ExpertError: a service missing or refusing; anything else is a bug: say so too
            self.exit_code = 1
            why = str(exc) if isinstance(exc, ExpertError) else f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"stopping the demonstrations: {why}")
        finally:
            with self._lock:
                self._plan = None
        if self.p["exit_when_done"] and not self._stop.is_set():
            self.get_logger().info(
                f"done: {sum(s for _, s in self.results)}/{len(self.results)} successful episodes; shutting down"
            )
            rclpy.shutdown(context=self.context)

    def close(self) -> None:
        """Stop the episode thread (an episode in progress is left unrecorded by the recorder's own shutdown)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
