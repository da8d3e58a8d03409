"""Episode bookkeeping, chunk execution and simulation time for LIBERO, without ROS.

:class:`EpisodeRunner` owns a :class:`~rynnvla_ros.libero.sim.LiberoEnv` (made again when the suite, task or seed
changes) and runs episodes step by step: ``reset`` (the protocol's reset and wait steps), ``load_chunk`` (the rows
of an action chunk), ``step`` (one row, or the hold action when none is left). The simulation time advances by the
control period (0.05 s) per simulator step, wait steps included, and jumps by ``reset_gap`` at every reset, so the
frames of one episode never enter the history of the next. It starts at 1 s and never goes back.

Execution of chunks (:class:`ChunkPlayer`): ``replan_steps`` 0 executes every row of a chunk open-loop before the
next one is needed (the release's protocol); n > 0 executes at most n rows of each chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rynnvla_ros.libero.protocol import ACTION_DIM, CONTROL_PERIOD, ENV_SEED, IMAGE_SIZE, SUITES, WAIT_STEPS
from rynnvla_ros.libero.sim import LiberoEnv, LiberoError, Observation

NS = 1_000_000_000
IDLE, RESETTING, RUNNING, SUCCESS, TIMEOUT, ERROR = "idle", "resetting", "running", "success", "timeout", "error"


@dataclass
class Episode:
    """One trial: what it is, how far it got and how it ended."""

    number: int
    suite: str
    task_id: int
    task: str
    init_state: int
    seed: int
    max_steps: int
    wait_steps: int
    step: int = 0
    """Policy steps executed."""
    chunks: int = 0
    state: str = RUNNING
    message: str = ""
    actions: list[list[float]] = field(default_factory=list, repr=False)
    """Every executed action (policy steps only)."""

    @property
    def done(self) -> bool:
        return self.state in (SUCCESS, TIMEOUT, ERROR)

    @property
    def success(self) -> bool:
        return self.state == SUCCESS

    def record_step(self, action: np.ndarray, goal_reached: bool) -> None:
        """Count one executed policy step; the episode ends on success or after ``max_steps``."""
        if self.done:
            raise LiberoError(f"episode {self.number} is over ({self.state})")
        self.step += 1
        self.actions.append([float(v) for v in action])
        if goal_reached:
            self.state, self.message = SUCCESS, f"task solved after {self.step} steps"
        elif self.step >= self.max_steps:
            self.state, self.message = TIMEOUT, f"not solved within {self.max_steps} steps"

    def fail(self, message: str) -> None:
        """End the episode as a failure (the release counts any exception as one)."""
        self.state, self.message = ERROR, message


class ChunkPlayer:
    """The rows of the current chunk still to execute (open-loop, or the first ``replan_steps`` rows)."""

    def __init__(self, replan_steps: int = 0) -> None:
        if replan_steps < 0:
            raise ValueError(f"replan_steps must be >= 0 (0: the whole chunk), got {replan_steps}")
        self.replan_steps = int(replan_steps)
        self._rows: list[np.ndarray] = []

    def load(self, rows: np.ndarray, skip: int = 0) -> None:
        """Replace what is left with ``rows`` (K, 7) from row ``skip`` on (rows already due in the past)."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != ACTION_DIM or rows.shape[0] < 1:
            raise LiberoError(f"a chunk must have shape (K >= 1, {ACTION_DIM}), got {rows.shape}")
        if not np.all(np.isfinite(rows)):
            raise LiberoError("the chunk holds non-finite values")
        rows = rows[max(int(skip), 0) :]
        if self.replan_steps:
            rows = rows[: self.replan_steps]
        self._rows = list(rows)

    @property
    def left(self) -> int:
        return len(self._rows)

    @property
    def empty(self) -> bool:
        return not self._rows

    def next(self) -> np.ndarray:
        """The next row (IndexError when empty)."""
        return self._rows.pop(0)

    def clear(self) -> None:
        self._rows = []


@dataclass(frozen=True)
class Selection:
    """Which episode to run."""

    suite: str = "libero_goal"
    task_id: int = 0
    init_state: int = 0
    seed: int = ENV_SEED


EnvFactory = Callable[[str, int, int, int, bool], LiberoEnv]


class EpisodeRunner:
    """Runs LIBERO episodes step by step (see the module docstring)."""

    def __init__(
        self,
        image_size: int = IMAGE_SIZE,
        flip: bool = True,
        replan_steps: int = 0,
        max_steps: int = 0,
        wait_steps: int = -1,
        reset_gap: float = 1.0,
        env_factory: EnvFactory = LiberoEnv,
    ) -> None:
        """``max_steps`` 0 and ``wait_steps`` -1 take the suite's official values."""
        if reset_gap <= 0:
            raise ValueError(f"reset_gap must be > 0 s, got {reset_gap}")
        self.image_size, self.flip = int(image_size), bool(flip)
        self.max_steps_override, self.wait_steps_override = int(max_steps), int(wait_steps)
        self.player = ChunkPlayer(replan_steps)
        self.period_ns = round(CONTROL_PERIOD * NS)
        self.gap_ns = round(reset_gap * NS)
        self.stamp = NS
        """Simulation time (ns) of the current observation."""
        self.env: LiberoEnv | None = None
        self.episode: Episode | None = None
        self.observation: Observation | None = None
        self.episodes = 0
        self._factory = env_factory
        self._hold_gripper = -1.0

    def limits(self, suite: str) -> tuple[int, int]:
        """(max_steps, wait_steps) for ``suite``: the overrides, else the official values (suites outside the
        protocol table, e.g. LIBERO-PRO's, need a max_steps override)."""
        wait = self.wait_steps_override if self.wait_steps_override >= 0 else WAIT_STEPS
        if self.max_steps_override > 0:
            return self.max_steps_override, wait
        if suite not in SUITES:
            raise LiberoError(f"suite {suite} has no official max_steps ({', '.join(SUITES)} have): set max_steps")
        return SUITES[suite].max_steps, wait

    def reset(self, selection: Selection) -> Observation:
        """Start a new episode: make the environment if the suite, task or seed changed, then the protocol reset."""
        max_steps, wait_steps = self.limits(selection.suite)
        env = self.env
        if env is None or (env.suite, env.task_id) != (selection.suite, selection.task_id):
            # the new environment first: a bad selection leaves the current one in place
            env = self._factory(selection.suite, selection.task_id, self.image_size, selection.seed, self.flip)
            self.close()
            self.env = env
        elif env.seed != selection.seed:
            env.reseed(selection.seed)
        self.player.clear()
        self.episodes += 1
        self.episode = Episode(
            self.episodes, env.suite, env.task_id, env.language, selection.init_state, env.seed, max_steps, wait_steps
        )
        self.episode.state = RESETTING
        try:
            obs = env.reset(selection.init_state, wait_steps)
        except Exception as exc:
            self.episode.fail(f"reset failed: {type(exc).__name__}: {exc}")
            raise
        self.stamp += self.gap_ns + wait_steps * self.period_ns
        self.episode.state = RUNNING
        self._hold_gripper = -1.0
        self.observation = obs
        return obs

    @property
    def needs_chunk(self) -> bool:
        """Whether the running episode has no row left to execute."""
        return self.episode is not None and not self.episode.done and self.player.empty

    def load_chunk(self, rows: np.ndarray, skip: int = 0) -> None:
        """Take a chunk's rows (from row ``skip``) for the next steps."""
        if self.episode is None or self.episode.done:
            raise LiberoError("no episode is running")
        self.player.load(rows, skip)
        self.episode.chunks += 1

    def hold_action(self) -> np.ndarray:
        """No motion, the last gripper command (real-time mode when no row is due)."""
        return np.array([0.0] * (ACTION_DIM - 1) + [self._hold_gripper])

    def step(self, hold_when_empty: bool = False) -> Observation:
        """Execute the next row (or, with ``hold_when_empty``, the hold action); the episode ends on success, after
        max_steps or on a simulator error (then the exception propagates after the episode is marked failed)."""
        episode, env = self.episode, self.env
        if episode is None or env is None or episode.done:
            raise LiberoError("no episode is running")
        if self.player.empty:
            if not hold_when_empty:
                raise LiberoError("no action left: load a chunk first")
            action = self.hold_action()
        else:
            action = self.player.next()
        try:
            obs, success = env.step(action)
        except Exception as exc:
            episode.fail(f"simulator step failed: {type(exc).__name__}: {exc}")
            raise
        self._hold_gripper = float(action[-1])
        self.stamp += self.period_ns
        self.observation = obs
        episode.record_step(action, success)
        if episode.done:
            self.player.clear()
        return obs

    def close(self) -> None:
        """Close the environment."""
        env, self.env = self.env, None
        if env is not None:
            env.close()
