"""The LIBERO protocol (the release's numbers), episode bookkeeping, chunk execution, and the simulator wrapper
against the real LIBERO simulator: initial state per trial, wait steps, max steps, seeded resets, state, flip,
success."""

from __future__ import annotations

import numpy as np
import pytest

from rynnvla_ros.libero import protocol
from rynnvla_ros.libero.episode import (
    ERROR,
    SUCCESS,
    TIMEOUT,
    ChunkPlayer,
    Episode,
    EpisodeRunner,
    Selection,
)
from rynnvla_ros.libero.sim import LiberoEnv, LiberoError, observation_state, quat2axisangle, rotate_180

SUITE, TASK = "libero_goal", 0  # "open the middle drawer of the cabinet"
DRAWER = "wooden_cabinet_1_middle_level"  # LIBERO's WoodenCabinet: open when the slide is below -0.14


# ------------------------------------------------------------------------------------------ the protocol table
def test_protocol_table_is_the_releases():
    # eval_solver_libero_continous_w_state.py: max_steps per suite, 10 wait steps, 50 trials, dummy action
    assert {name: p.max_steps for name, p in protocol.SUITES.items()} == {
        "libero_spatial": 220,
        "libero_object": 280,
        "libero_goal": 300,
        "libero_10": 520,
        "libero_90": 400,
    }
    assert all(p.wait_steps == 10 and p.trials == 50 for p in protocol.SUITES.values())
    assert protocol.suite_protocol("libero_goal").total_steps == 310  # the loop runs while t < max_steps + 10
    assert protocol.DUMMY_ACTION == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    # K of the released checkpoints, 256 px renders, seed 0, history 2, 20 Hz control
    assert {n: protocol.SUITES[n].time_horizon for n in ("libero_spatial", "libero_object", "libero_goal")} == {
        "libero_spatial": 10,
        "libero_object": 5,
        "libero_goal": 5,
    }
    assert protocol.SUITES["libero_10"].time_horizon == 10
    assert (protocol.IMAGE_SIZE, protocol.ENV_SEED, protocol.HISTORY, protocol.CONTROL_PERIOD) == (256, 0, 2, 0.05)
    with pytest.raises(ValueError, match="suites: libero_spatial"):
        protocol.suite_protocol("libero_100")


def test_runner_takes_the_official_limits_unless_overridden():
    assert EpisodeRunner().limits("libero_spatial") == (220, 10)
    assert EpisodeRunner().limits("libero_10") == (520, 10)
    assert EpisodeRunner(max_steps=7, wait_steps=0).limits("libero_goal") == (7, 0)
    assert EpisodeRunner(max_steps=50).limits("libero_goal_with_mug") == (50, 10)  # a LIBERO-PRO suite
    with pytest.raises(LiberoError, match="set max_steps"):
        EpisodeRunner().limits("libero_goal_with_mug")


# ------------------------------------------------------------------------------------------ bookkeeping
def test_episode_ends_on_success_or_after_max_steps():
    e = Episode(1, SUITE, TASK, "open", 0, 0, max_steps=3, wait_steps=10)
    e.record_step(np.zeros(7), False)
    e.record_step(np.zeros(7), False)
    assert not e.done and e.step == 2
    e.record_step(np.ones(7), False)
    assert (e.state, e.done, e.success, e.step) == (TIMEOUT, True, False, 3)
    with pytest.raises(LiberoError, match="is over"):
        e.record_step(np.zeros(7), True)
    won = Episode(2, SUITE, TASK, "open", 0, 0, max_steps=3, wait_steps=10)
    won.record_step(np.zeros(7), True)
    assert (won.state, won.success, won.step) == (SUCCESS, True, 1)
    failed = Episode(3, SUITE, TASK, "open", 0, 0, max_steps=3, wait_steps=10)
    failed.fail("boom")
    assert (failed.state, failed.done, failed.success) == (ERROR, True, False)


def test_chunk_player_open_loop_and_replanning():
    rows = np.arange(35, dtype=float).reshape(5, 7)
    player = ChunkPlayer()
    player.load(rows)
    got = [player.next() for _ in range(player.left)]
    np.testing.assert_array_equal(np.array(got), rows)  # the whole chunk, in order
    assert player.empty
    replan = ChunkPlayer(replan_steps=2)
    replan.load(rows)
    assert replan.left == 2
    np.testing.assert_array_equal(replan.next(), rows[0])
    replan.load(rows, skip=3)  # a new chunk replaces what is left; rows already due are skipped
    np.testing.assert_array_equal([replan.next(), replan.next()], rows[3:5])
    for bad, match in ((np.zeros((2, 6)), "shape"), (np.zeros((0, 7)), "shape"), (np.full((1, 7), np.nan), "finite")):
        with pytest.raises(LiberoError, match=match):
            player.load(bad)
    with pytest.raises(ValueError, match="replan_steps"):
        ChunkPlayer(-1)


def test_axis_angle_matches_robosuite():
    from robosuite.utils.transform_utils import quat2axisangle as reference

    rng = np.random.default_rng(0)
    for q in [*rng.normal(size=(20, 4)), np.array([0.0, 0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 0.0])]:
        q = q / np.linalg.norm(q)
        np.testing.assert_allclose(quat2axisangle(q), reference(q.copy()), atol=1e-12)


# ------------------------------------------------------------------------------------------ the simulator
@pytest.fixture(scope="module")
def env():
    e = LiberoEnv(SUITE, TASK)
    yield e
    e.close()


def _timestep(env: LiberoEnv) -> int:
    """robosuite's own count of env.step calls since the last reset."""
    return int(env.env.env.timestep)


@pytest.mark.sim
@pytest.mark.slow
def test_trials_start_from_their_init_state_after_the_seeded_resets(env):
    assert env.num_init_states == 50 and env.init_states.shape[1] > 9
    env.reseed(0)
    first = env.reset(0, wait_steps=0)
    # trial i starts from the benchmark's initial state i
    np.testing.assert_array_equal(env.sim_state(), env.init_states[0])
    assert _timestep(env) == 0
    fixtures_0 = env.sim.model.body_pos.copy()
    second = env.reset(1)
    assert _timestep(env) == protocol.WAIT_STEPS  # the 10 dummy steps after the reset
    fixtures_1 = env.sim.model.body_pos.copy()
    # the second reset placed the fixtures differently (the seed matters, as the release notes) ...
    assert np.abs(fixtures_1 - fixtures_0).max() > 1e-4
    # ... and starting at trial 1 directly replays the reset of trial 0 first: the same scene as in the sequence
    env.reset(1, wait_steps=0)
    np.testing.assert_array_equal(env.sim.model.body_pos, fixtures_1)
    np.testing.assert_array_equal(env.sim_state(), env.init_states[1])
    assert first.front.shape == second.wrist.shape == (256, 256, 3) and first.front.dtype == np.uint8
    with pytest.raises(LiberoError, match=r"initial states 0\.\.49"):
        env.reset(50)


@pytest.mark.sim
@pytest.mark.slow
def test_observation_is_flipped_and_the_state_is_the_simulators(env):
    obs = env.reset(0, wait_steps=0)
    raw = obs.raw
    np.testing.assert_array_equal(obs.front, raw["agentview_image"][::-1, ::-1])
    np.testing.assert_array_equal(obs.wrist, rotate_180(raw["robot0_eye_in_hand_image"]))
    assert not np.array_equal(obs.front, raw["agentview_image"])
    np.testing.assert_array_equal(obs.state, observation_state(raw))
    sim = env.sim
    eef = sim.data.site_xpos[sim.model.site_name2id("gripper0_grip_site")]
    fingers = [sim.data.qpos[sim.model.get_joint_qpos_addr(f"gripper0_finger_joint{i}")] for i in (1, 2)]
    np.testing.assert_allclose(obs.state[:3], eef, atol=1e-9)
    np.testing.assert_allclose(obs.state[6:], fingers, atol=1e-9)
    with pytest.raises(LiberoError, match="7 finite values"):
        env.step([0.0] * 6)


@pytest.mark.sim
@pytest.mark.slow
def test_runner_episode_follows_the_protocol_and_reports_a_forced_success(env):
    runner = EpisodeRunner(max_steps=3, env_factory=lambda *args: env)
    runner.reset(Selection(SUITE, TASK, init_state=0))
    episode = runner.episode
    assert (episode.wait_steps, episode.max_steps, episode.init_state, episode.seed) == (10, 3, 0, 0)
    assert _timestep(env) == 10
    start = runner.stamp
    assert runner.needs_chunk
    chunk = np.zeros((5, 7))
    chunk[:, -1] = -1.0
    runner.load_chunk(chunk)
    while not episode.done:
        runner.step()
    # 3 policy steps after the 10 wait steps (t < max_steps + 10), then a timeout; the rest of the chunk is dropped
    assert (episode.state, episode.step, episode.chunks, _timestep(env)) == (TIMEOUT, 3, 1, 13)
    assert runner.stamp - start == 3 * 50_000_000 and runner.player.empty
    # a new episode starts a reset_gap later; the drawer opened by hand is reported as a success at the next step
    runner.wait_steps_override = 0
    runner.reset(Selection(SUITE, TASK, init_state=0))
    assert runner.stamp - start >= 3 * 50_000_000 + 1_000_000_000
    assert not env.check_success()
    env.set_joint_positions({DRAWER: -0.16})
    assert env.check_success()
    runner.step(hold_when_empty=True)  # real-time mode: no chunk yet, the hold action
    assert (runner.episode.state, runner.episode.step) == (SUCCESS, 1)
    assert runner.episode.actions == [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]]
    with pytest.raises(LiberoError, match="no joint"):
        env.set_joint_positions({"no_such_joint": 0.0})
