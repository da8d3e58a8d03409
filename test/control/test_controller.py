"""The controller on a simulated clock with an ideal arm: what is commanded, when, and what never is."""

import numpy as np
import pytest

from rynnvla_ros.control.controller import ArmController, ControllerConfig, State
from rynnvla_ros.control.safety import SafetyConfig
from rynnvla_ros.control.so100_description import JOINT_NAMES, joint_limits

RATE = 100.0
NAMES = list(JOINT_NAMES)
HOME = np.array([0.1, -1.0, 1.0, 0.5, 0.0, 0.2])


class Rig:
    """An arm that reaches each command by the next tick, a clock, and the commands sent."""

    def __init__(self, **config) -> None:
        safety = config.pop("safety", SafetyConfig(max_velocity=2.0, max_step=0.1, ramp_time=0.0))
        self.ctl = ArmController(ControllerConfig(safety=safety, **config), joint_limits())
        self.t, self.q = 1000.0, HOME.copy()
        self.commands: list[tuple[float, np.ndarray]] = []

    def run(self, seconds: float, measure: bool = True) -> None:
        for _ in range(round(seconds * RATE)):
            self.t += 1 / RATE
            if measure:
                self.ctl.on_state(self.t, self.q)
            cmd = self.ctl.step(self.t)
            if cmd is not None:
                self.commands.append((self.t, cmd))
                self.q = cmd.copy()

    def chunk(self, rows, dt=0.1, start_step=1, stamp=None, space="joint_positions", **kw):
        rows = np.atleast_2d(np.asarray(rows, dtype=float))
        return self.ctl.submit_chunk(
            self.t,
            names=NAMES,
            action_space=space,
            stamp=self.t if stamp is None else stamp,
            dt=dt,
            start_step=start_step,
            horizon=rows.shape[0],
            dim=rows.shape[1],
            data=rows.ravel().tolist(),
            **kw,
        )

    def steps(self) -> np.ndarray:
        cmds = np.array([c for _, c in self.commands])
        return np.abs(np.diff(cmds, axis=0)).max(axis=1) if len(cmds) > 1 else np.zeros(0)


def test_nothing_is_commanded_before_the_first_joint_state():
    rig = Rig()
    rig.run(0.5, measure=False)
    assert rig.commands == [] and rig.ctl.state is State.WAITING
    assert not rig.chunk(np.tile(HOME, (5, 1))).accepted  # chunks are refused too
    rig.run(0.05)
    _, first = rig.commands[0]
    np.testing.assert_allclose(first, HOME)  # the first command is the measured state: no snap to zero


def test_a_chunk_is_executed_at_its_times_then_held():
    rig = Rig()
    rig.run(0.1)
    target = HOME + np.array([0.2, 0.1, -0.1, 0.1, 0.2, 0.3])
    rows = HOME + np.linspace(0.1, 1.0, 10)[:, None] * (target - HOME)
    v = rig.chunk(rows, dt=0.1, start_step=1)
    assert v.accepted and v.message == "10 of 10 steps scheduled"
    t0 = rig.t
    rig.run(0.5)
    # half way through, the command follows the rows (linear between them)
    at = {round(t - t0, 2): c for t, c in rig.commands}
    np.testing.assert_allclose(at[0.5], rows[4], atol=1e-9)
    rig.run(1.0)
    np.testing.assert_allclose(rig.commands[-1][1], target, atol=1e-9)
    assert rig.ctl.state is State.HOLDING
    assert rig.steps().max() <= 2.0 / RATE + 1e-12  # never faster than max_velocity


def test_past_steps_are_skipped():
    rig = Rig()
    rig.run(0.1)
    far = HOME + 0.5
    rows = np.vstack([np.tile(far, (5, 1)), np.tile(HOME + 0.05, (5, 1))])
    v = rig.chunk(rows, dt=0.1, start_step=0, stamp=rig.t - 0.55)  # rows 0..5 are due in the past
    assert v.accepted and v.message.startswith("4 of 10 steps")
    rig.run(1.0)
    cmds = np.array([c for _, c in rig.commands])
    assert np.abs(cmds - HOME).max() <= 0.05 + 1e-9  # never went towards the skipped rows
    assert rig.ctl.counters.skipped_steps == 6


def test_deltas_apply_to_the_state_at_the_chunk_stamp():
    rig = Rig()
    rig.run(0.3)
    stamp = rig.t - 0.2
    rig.q = HOME + 0.1  # the arm moved since the observation (pushed): deltas still refer to the stamp's state
    rig.run(0.01)
    assert rig.chunk(np.tile(np.full(6, 0.05), (3, 1)), stamp=stamp, start_step=3, space="joint_deltas").accepted
    rig.run(1.0)
    np.testing.assert_allclose(rig.commands[-1][1], HOME + 0.05, atol=1e-9)


def test_targets_beyond_the_limits_are_clipped():
    rig = Rig()
    rig.run(0.1)
    limits = joint_limits()
    v = rig.chunk(np.tile([3.0, -1.0, 1.0, 0.5, 0.0, 0.2], (3, 1)))
    assert v.accepted and "clipped" in v.message and rig.ctl.counters.clipped == 1
    rig.run(3.0)
    assert rig.commands[-1][1][0] == pytest.approx(limits.upper[0])
    assert all(np.all(c <= limits.upper + 1e-12) and np.all(c >= limits.lower - 1e-12) for _, c in rig.commands)


def test_rejected_chunks_leave_the_plan_running():
    rig = Rig()
    rig.run(0.1)
    target = HOME + 0.2
    assert rig.chunk(np.tile(target, (10, 1))).accepted
    bad = [np.full((3, 6), np.nan), np.zeros((3, 5)), np.zeros((2000, 6))]
    assert not any(rig.chunk(rows).accepted for rows in bad)
    assert not rig.chunk(np.tile(target, (3, 1)), space="eef_delta_gripper").accepted
    assert not rig.chunk(np.tile(HOME, (3, 1)), stamp=rig.t + 60).accepted  # clock mismatch
    assert rig.ctl.counters.rejected == 5 and "future" in rig.ctl.counters.last_rejection
    rig.run(1.5)
    np.testing.assert_allclose(rig.commands[-1][1], target, atol=1e-9)


def test_dry_run_chunks_are_ignored():
    rig = Rig()
    rig.run(0.1)
    v = rig.chunk(np.tile(HOME + 0.3, (3, 1)), dry_run=True)
    assert not v.accepted and rig.ctl.counters.dry_run == 1 and rig.ctl.counters.rejected == 0
    rig.run(0.5)
    np.testing.assert_allclose(rig.commands[-1][1], HOME)


def test_silence_holds_the_last_command_without_a_jump():
    rig = Rig(command_timeout=0.3)
    rig.run(0.1)
    rows = HOME + np.linspace(0.02, 1.0, 50)[:, None] * 0.5  # a slow 5 s motion
    assert rig.chunk(rows).accepted
    rig.run(1.0)
    cmds = np.array([c for _, c in rig.commands])
    moving_until = max(i for i in range(1, len(cmds)) if np.abs(cmds[i] - cmds[i - 1]).max() > 0)
    held = rig.commands[moving_until][0]
    assert held - rig.commands[0][0] == pytest.approx(0.1 + 0.3, abs=0.015)  # chunk at 0.1 s, timeout 0.3 s
    assert rig.steps().max() <= 2.0 / RATE + 1e-12 and rig.ctl.counters.timeouts == 1
    assert rig.ctl.state is State.HOLDING


def test_estop_holds_at_once_until_reset():
    rig = Rig()
    rig.run(0.1)
    assert rig.chunk(HOME + np.linspace(0.1, 1.0, 10)[:, None] * 0.5).accepted
    rig.run(0.3)
    assert rig.ctl.estop(rig.t).startswith("e-stop latched")
    stopped_at, n = rig.ctl.measured, len(rig.commands)
    rig.run(0.5)
    assert all(np.array_equal(c, stopped_at) for _, c in rig.commands[n:])  # from the next tick on
    assert not rig.chunk(np.tile(HOME, (3, 1))).accepted and "e-stop" in rig.ctl.counters.last_rejection
    assert rig.ctl.state is State.ESTOP and rig.ctl.estop(rig.t) == "e-stop was already latched"
    ok, _ = rig.ctl.reset(rig.t)
    assert ok and rig.ctl.state is State.HOLDING
    assert rig.chunk(np.tile(HOME, (5, 1))).accepted
    rig.run(1.0)
    np.testing.assert_allclose(rig.commands[-1][1], HOME, atol=1e-9)
    assert rig.ctl.reset(rig.t) == (False, "e-stop is not latched")


def test_a_lost_joint_state_stops_commands_and_restarts_from_the_measured_state():
    rig = Rig(state_timeout=0.2)
    rig.run(0.1)
    assert rig.chunk(np.tile(HOME + 0.3, (20, 1))).accepted
    rig.run(0.2)
    n = len(rig.commands)
    rig.run(0.5, measure=False)
    assert len(rig.commands) <= n + round(0.2 * RATE) and rig.ctl.state is State.STATE_LOST
    rig.q = HOME - 0.1  # moved by hand while the bus was down
    rig.run(0.02)
    np.testing.assert_allclose(rig.commands[-2][1], HOME - 0.1)  # restarts where the arm is
    rig.run(1.0)
    np.testing.assert_allclose(rig.commands[-1][1], HOME - 0.1)  # the old plan was dropped


def test_ramp_in_after_start():
    rig = Rig(safety=SafetyConfig(max_velocity=1.0, max_step=0.1, ramp_time=1.0))
    rig.run(0.02)
    rig.chunk(np.tile(HOME + np.array([1.0, 0, 0, 0, 0, 0]), (5, 1)))
    rig.run(0.1)
    early = rig.steps()[:5].max()
    rig.run(1.0)
    assert early <= 0.15 * 1.0 / RATE and rig.steps()[-1] == pytest.approx(1.0 / RATE)


def test_joint_trajectory():
    rig = Rig()
    rig.run(0.1)
    v = rig.ctl.submit_trajectory(
        rig.t, names=NAMES[::-1], stamp=0.0, times_from_start=[0.2, 0.4], positions=[HOME[::-1], (HOME + 0.1)[::-1]]
    )
    assert v.accepted
    rig.run(1.0)
    np.testing.assert_allclose(rig.commands[-1][1], HOME + 0.1, atol=1e-9)
