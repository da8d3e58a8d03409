"""Scripted expert for the block-in-circle task: joint-space plans from inverse kinematics on the twin's model.

The plan is a list of waypoints (reach above the block, descend, close, lift, carry above the circle, lower,
open, retreat), each solved by damped least squares on the gripper's tool site with the jaws pointing down (high
above a point near the base the 5-joint arm cannot keep them vertical: it tilts them, a centimetre or two), and
joined by segments of constant speed with short ramps (:func:`ramped`) whose durations follow the largest joint
motion. The expert knows the true layout (it is the simulator's privileged view), so it is open-loop:
:meth:`ExpertPlan.at` gives the joint targets at any time, which ``so100_expert`` streams to the controller as
trajectories. :class:`ExecutionNoise` perturbs what the controller executes (not the recorded target), so
demonstrations also hold states off the plan, each labelled with the target that leads back to it (DART: Laskey et
al., 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from rynnvla_ros.control import so100_description as desc
from rynnvla_ros.control.sim_backend import ARM_PREFIX
from rynnvla_ros.tasks.block_in_circle import BLOCK_HALF, Layout

TOOL_SITE = ARM_PREFIX + "gripperframe"  # tip of the fixed jaw; the moving jaw closes towards it along the site's z
GRIPPER_OPEN = 0.9  # rad
GRIPPER_CLOSED = -0.1  # rad: commanded past the block's width so the jaws squeeze it
GRASP_OFFSET = BLOCK_HALF + 0.02  # m from the block's centre to the fixed jaw's tip, against the closing direction: the
# block sits mid-way between the open jaws, so an arm 1-2 cm off still closes around it
GRASP_HEIGHT = BLOCK_HALF - 0.004  # m, tool site height while grasping (jaw tips 4 mm below the block's centre)
PLACE_HEIGHT = GRASP_HEIGHT + 0.004  # m, tool site height when putting the block down
CARRY_HEIGHT = 0.09  # m, tool site height when moving above the table
JOINT_SPEED = 0.5  # rad/s, average of the joint that moves most in a segment (it peaks at 1 / (1 - ramp) of it)
ACCEL_TIME = 0.15  # s of constant acceleration at the start of a segment (and of deceleration at its end)
MIN_SEGMENT = 0.5  # s


def ramped(tau: np.ndarray, ramp: np.ndarray | float) -> np.ndarray:
    """Fraction of a segment done at normalised time ``tau`` (0-1): constant speed between a constant acceleration
    over the first ``ramp`` of the segment and a constant deceleration over the last (``ramp`` capped at 0.5).

    Unlike a minimum-jerk profile (10 tau^3 at the start: 0.3 % of a 1.5 s segment after 0.1 s), the motion is under
    way within a control period of the start, so a state at rest at a waypoint shows the next motion to a policy
    that executes only the first step of each chunk.
    """
    r = np.minimum(np.asarray(ramp, dtype=float), 0.5)
    v = 1.0 / (1.0 - r)  # peak speed, in segments per unit of tau
    rising = v * tau * tau / (2 * r)
    falling = 1.0 - v * (1.0 - tau) ** 2 / (2 * r)
    return np.where(tau < r, rising, np.where(tau > 1.0 - r, falling, v * (tau - r / 2)))


@dataclass(frozen=True)
class ExpertPlan:
    """Waypoint times (s from the plan's start) and joint positions (rad, JOINT_NAMES order)."""

    times: np.ndarray  # (n,)
    positions: np.ndarray  # (n, 6)
    contact: tuple[tuple[float, float], ...] = ()  # spans (s) in which the jaws work the block (grasp, place)

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def at(self, t: float | np.ndarray) -> np.ndarray:
        """Joint targets at ``t`` s (:func:`ramped` between waypoints; held before the start and after the end)."""
        t = np.clip(np.asarray(t, dtype=float), 0.0, self.duration)
        i = np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, len(self.times) - 2)
        t0, length = self.times[i], np.maximum(self.times[i + 1] - self.times[i], 1e-9)
        s = ramped(np.clip((t - t0) / length, 0.0, 1.0), ACCEL_TIME / length)
        q0, q1 = self.positions[i], self.positions[i + 1]
        return q0 + s[..., None] * (q1 - q0)


class ScriptedExpert:
    """Plans pick-and-place motions on a compiled twin model (one with the arm attached, see sim_backend)."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = model.site(TOOL_SITE).id
        joints = [model.joint(ARM_PREFIX + n) for n in desc.JOINT_NAMES]
        self.qpos = np.array([j.qposadr[0] for j in joints])
        self.dofs = np.array([j.dofadr[0] for j in joints[:5]])
        self.lower = np.array([model.jnt_range[j.id][0] for j in joints])
        self.upper = np.array([model.jnt_range[j.id][1] for j in joints])

    def _tool(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.data.qpos[self.qpos] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def closing_direction(self, q: np.ndarray) -> np.ndarray:
        """Horizontal unit vector from the fixed jaw towards the moving jaw at ``q``."""
        n = self._tool(q)[1][:, 2].copy()
        n[2] = 0.0
        return n / max(np.linalg.norm(n), 1e-9)

    def solve(self, q: np.ndarray, position: np.ndarray, closing: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """Arm joints that put the tool site at ``position`` with the jaws pointing down (and closing along
        ``closing`` when given), starting from ``q``; the gripper joint is kept. Returns (q, position error m)."""
        q = np.array(q, dtype=float)
        down = np.array([0.0, 0.0, -1.0])
        jp, jr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        err = np.inf
        for _ in range(200):
            pos, rot = self._tool(q)
            err_p = position - pos
            err = float(np.linalg.norm(err_p))
            rows = [err_p, 0.5 * np.cross(rot[:, 0], down)]
            mujoco.mj_jacSite(self.model, self.data, jp, jr, self.site)
            jac = [jp[:, self.dofs], 0.5 * jr[:, self.dofs]]
            if closing is not None:  # yaw about the vertical: turn the closing axis onto ``closing``
                rows.append(0.5 * np.cross(rot[:, 2], closing)[2:])
                jac.append(0.5 * jr[2:, self.dofs])
            e = np.concatenate(rows)
            j = np.vstack(jac)
            if err < 1e-4 and np.linalg.norm(e[3:]) < 1e-3:
                break
            dq = j.T @ np.linalg.solve(j @ j.T + 1e-4 * np.eye(j.shape[0]), e)
            q[:5] = np.clip(q[:5] + np.clip(dq, -0.2, 0.2), self.lower[:5], self.upper[:5])
        return q, err

    def grasp_closing(self, q: np.ndarray, layout: Layout) -> np.ndarray:
        """The block face normal (of the four) nearest the closing direction the arm has above the block."""
        bx, by = layout.block_xy
        above, _ = self.solve(q, np.array([bx, by, CARRY_HEIGHT]))
        natural = self.closing_direction(above)
        angles = layout.block_yaw + np.arange(4) * np.pi / 2
        normals = np.stack([np.cos(angles), np.sin(angles), np.zeros(4)], axis=1)
        return normals[int(np.argmax(normals @ natural))]

    def _over(self, q: np.ndarray, centre: np.ndarray, height: float, closing: np.ndarray | None) -> np.ndarray:
        """Joints that hold the jaws around ``centre`` (x, y) at tool height ``height``."""
        n = closing if closing is not None else self.closing_direction(q)
        for _ in range(3):  # the offset depends on the closing direction the solution ends with
            q, _ = self.solve(q, np.array([*(centre - GRASP_OFFSET * n[:2]), height]), closing)
            if closing is None:
                n = self.closing_direction(q)
        return q

    def plan(self, q_start: np.ndarray, layout: Layout) -> ExpertPlan:
        """Waypoints from the measured joints ``q_start`` through the whole pick and place."""
        q_start = np.asarray(q_start, dtype=float)
        block, target = np.asarray(layout.block_xy), np.asarray(layout.target_xy)
        closing = self.grasp_closing(q_start, layout)
        ready = q_start.copy()
        ready[5] = GRIPPER_OPEN
        above_block = self._over(ready, block, CARRY_HEIGHT, closing)
        at_block = self._over(above_block, block, GRASP_HEIGHT, closing)
        lifted = self._over(at_block, block, CARRY_HEIGHT, closing)
        above_target = self._over(lifted, target, CARRY_HEIGHT, None)
        at_target = self._over(above_target, target, PLACE_HEIGHT, None)
        # no waits at the block or the circle: the jaws start to move as the arm arrives, so the state there
        # always shows the next motion (a wait would give a policy a state whose demonstrated action is "stay")
        with_gripper = [
            (above_block, GRIPPER_OPEN),
            (at_block, GRIPPER_OPEN),
            (at_block, GRIPPER_CLOSED),
            (lifted, GRIPPER_CLOSED),
            (above_target, GRIPPER_CLOSED),
            (at_target, GRIPPER_CLOSED),
            (at_target, GRIPPER_OPEN),
            (self._over(at_target, target, CARRY_HEIGHT, None), GRIPPER_OPEN),
        ]
        times, positions = [0.0], [q_start]
        for q, grip in with_gripper:
            q = q.copy()
            q[5] = grip
            step = np.abs(q - positions[-1]).max()
            times.append(times[-1] + max(MIN_SEGMENT, step / JOINT_SPEED))
            positions.append(q)
        # times[k] is when the arm reaches with_gripper[k - 1]: from reaching the block until it is lifted, and
        # from reaching the circle to the end
        contact = ((times[2], times[4]), (times[6], times[-1]))
        return ExpertPlan(np.array(times), np.clip(np.array(positions), self.lower, self.upper), contact)


class ExecutionNoise:
    """A smooth random offset of the arm joints (0-4) over a plan, for the controller to execute on top of it.

    Each joint follows an Ornstein-Uhlenbeck process (standard deviation ``std`` rad, correlation time ``period`` s,
    starting at 0), scaled by an envelope that is 0 in the plan's contact spans and falls linearly to 0 over the
    ``fade`` s before each (and rises over ``fade`` s after), so the arm is back on the plan when the jaws reach the
    block or the circle. The same ``seed`` gives the same offsets.
    """

    def __init__(self, plan: ExpertPlan, std: float, period: float, seed: int, fade: float = 1.0) -> None:
        self.check(std, period, fade)
        dt = 0.02
        self.times = np.append(np.arange(0.0, plan.duration, dt), plan.duration)
        decay = np.exp(-dt / period)
        shocks = np.random.default_rng(seed).normal(0.0, std * np.sqrt(1 - decay**2), (len(self.times), 5))
        walk = np.zeros_like(shocks)
        for k in range(1, len(walk)):
            walk[k] = decay * walk[k - 1] + shocks[k]
        self.walk = walk
        self.contact, self.fade = plan.contact, fade

    @staticmethod
    def check(std: float, period: float, fade: float) -> None:
        """Raises ValueError unless std >= 0 rad and period, fade > 0 s."""
        if std < 0 or period <= 0 or fade <= 0:
            raise ValueError(f"need std >= 0, period > 0 and fade > 0 (got {std}, {period}, {fade})")

    def envelope(self, t: np.ndarray) -> np.ndarray:
        """Scale of the offset at ``t`` s: 0 in contact spans, linear ramps of ``fade`` s around them, else 1."""
        out = np.ones_like(t)
        for start, end in self.contact:
            out = np.minimum(out, np.clip(np.maximum(start - t, t - end) / self.fade, 0.0, 1.0))
        return out

    def at(self, t: float | np.ndarray) -> np.ndarray:
        """Offsets (rad, JOINT_NAMES order; the gripper's is 0) at ``t`` s from the plan's start (0 after its end)."""
        t = np.asarray(t, dtype=float)
        out = np.zeros((*t.shape, 6))
        for j in range(5):
            out[..., j] = np.interp(t, self.times, self.walk[:, j], right=0.0)
        return out * self.envelope(t)[..., None]
