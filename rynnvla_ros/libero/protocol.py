"""The LIBERO evaluation protocol of RynnVLA-002, in one place (no simulator import here).

From the release's ``eval_solver_libero_continous_w_state.py`` and ``libero_util/libero_utils.py``
(``../shared/reference/rynnvla-002-official.md`` section 8):

- one ``OffScreenRenderEnv`` per task, cameras ``agentview`` (front) and ``robot0_eye_in_hand`` (wrist) rendered at
  256 x 256, ``env.seed(0)`` once after it is made;
- trial ``i`` (0-based, 50 per task) calls ``env.reset()`` and then ``env.set_init_state(init_states[i])`` with the
  benchmark's fixed initial states; the seed matters even so (a reset samples the fixtures' placement from numpy's
  global generator), so trial ``i`` is the ``i + 1``-th reset after seeding;
- the first 10 steps execute the dummy action ``[0, 0, 0, 0, 0, 0, -1]`` (objects settle), then the policy acts
  while ``t < max_steps + 10``; success is the ``done`` flag of ``env.step`` (the task's goal predicate);
- both images are rotated 180 degrees (both axes flipped), no resize;
- the state is ``robot0_eef_pos`` (3) + axis-angle of ``robot0_eef_quat`` (3) + ``robot0_gripper_qpos`` (2);
- the action is the 7-d end-effector delta + gripper command (-1 open, +1 close), executed as predicted;
- the whole chunk of K actions is executed open-loop; the model is queried again when it is used up;
- the history frame (M = 2) is the observation of the previous step; the first query of an episode has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from rynnvla_model.data.libero import STATE_NAMES
from rynnvla_ros.inference.robot_io import EEF_DELTA_GRIPPER, JointMap, RobotIO

# Chunk column names of the 7-d action (msg/ActionChunk.msg: eef_delta_gripper).
ACTION_NAMES = ("x", "y", "z", "rx", "ry", "rz", "gripper")
ACTION_SPACE = EEF_DELTA_GRIPPER
STATE_DIM = len(STATE_NAMES)
ACTION_DIM = len(ACTION_NAMES)

DUMMY_ACTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
WAIT_STEPS = 10
TRIALS_PER_TASK = 50
IMAGE_SIZE = 256
ENV_SEED = 0
CONTROL_FREQ = 20
"""Hz: robosuite's control frequency in LIBERO (``control_freq=20``), i.e. 0.05 s per step."""
CONTROL_PERIOD = 1.0 / CONTROL_FREQ
HISTORY = 2
FRONT_CAMERA = "agentview"
WRIST_CAMERA = "robot0_eye_in_hand"


@dataclass(frozen=True)
class SuiteProtocol:
    """The official settings of one task suite."""

    name: str
    max_steps: int
    """Policy steps per trial (the 10 wait steps come on top)."""
    time_horizon: int | None
    """K of the released checkpoint (None: no released checkpoint for this suite)."""
    trials: int = TRIALS_PER_TASK
    wait_steps: int = WAIT_STEPS

    @property
    def total_steps(self) -> int:
        """Simulator steps of a trial that runs to the end: ``max_steps + wait_steps``."""
        return self.max_steps + self.wait_steps


SUITES: dict[str, SuiteProtocol] = {
    p.name: p
    for p in (
        SuiteProtocol("libero_spatial", 220, 10),
        SuiteProtocol("libero_object", 280, 5),
        SuiteProtocol("libero_goal", 300, 5),
        SuiteProtocol("libero_10", 520, 10),
        SuiteProtocol("libero_90", 400, None),
    )
}


def suite_protocol(name: str) -> SuiteProtocol:
    """The protocol of suite ``name``; ValueError listing the known suites otherwise."""
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"no LIBERO protocol for suite {name!r}; suites: {', '.join(SUITES)}") from None


def libero_robot_io(history: int = HISTORY) -> RobotIO:
    """The robot I/O of a LIBERO checkpoint: the 8-d state by name (identity units), 7-d EEF-delta actions.

    Actions are published as the model predicts them (``eef_delta_gripper``); the state comes from the bridge's
    ``sensor_msgs/JointState`` whose names are :data:`STATE_NAMES`.
    """
    return RobotIO(
        joints=tuple(JointMap(name, 1.0, 0.0, False) for name in STATE_NAMES),
        control_period=CONTROL_PERIOD,
        history=history,
        cameras=("front", "wrist"),
        state=True,
        action_space=ACTION_SPACE,
        action_names=ACTION_NAMES,
    )
