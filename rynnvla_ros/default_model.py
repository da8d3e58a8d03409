"""The sim profile's default checkpoint: a small untrained model made by our own code, so the graph runs as shipped.

Until a trained SO100 model ships, ``rynnvla-bringup so100`` and ``ros2 launch rynnvla_ros so100.launch.py`` (sim)
load :data:`DEFAULT_CHECKPOINT` when no ``checkpoint`` is given. It is a tiny random RynnVLA model
(:func:`rynnvla_ros.inference.tiny_checkpoint.make_tiny_checkpoint`: compact vocabulary, tiny VQGAN, 64 px images,
K = 20 steps of 0.1 s: a 2 s plan, so chunks stay useful when a loaded CPU delays them) whose ``robot_io.json``
maps its actions to **absolute** joint targets in a box around a ready pose above the table. Its actions are noise,
but bounded: the arm leaves its folded rest pose for that box and moves a little inside it, which makes the chunks,
the planned path and the predicted frames visible. Regenerate it
with::

    .venv/bin/python -m rynnvla_ros.default_model models/so100_sim_default

A later trained model replaces it by changing :data:`DEFAULT_CHECKPOINT` only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from rynnvla_ros.control import so100_description as desc

DEFAULT_CHECKPOINT = "models/so100_sim_default"
"""The default checkpoint of the sim profile, relative to the package (source tree or installed share directory)."""
DEFAULT_TASK = "move the gripper over the table"
"""The sim profile's default task instruction (the policy needs one)."""
READY_POSE = desc.READY_POSITIONS[:5]
"""rad, the arm joints' centre of the default model's action box (the gripper uses its whole range)."""
HALF_RANGE = 0.8
"""rad, half width of that box: the model's action range (-30..30) spans READY_POSE +- HALF_RANGE."""
IMAGE_SIZE = 64
TIME_HORIZON = 20
CONTROL_PERIOD = 0.1
SEED = 0
_ACTION_BOUND = 30.0  # make_tiny_checkpoint's action statistics: -30..30 for the arm joints


def package_root() -> Path:
    """The folder holding ``models/``: the source tree when it has the checkpoint, else the installed share dir."""
    source = Path(__file__).resolve().parents[1]
    if (source / DEFAULT_CHECKPOINT).is_dir():
        return source
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        return Path(get_package_share_directory("rynnvla_ros"))
    except (ImportError, PackageNotFoundError):
        return source


def default_checkpoint_dir() -> Path:
    """Absolute path of :data:`DEFAULT_CHECKPOINT` (it may not exist: the policy node then names the path)."""
    return package_root() / DEFAULT_CHECKPOINT


def default_robot_io():
    """Absolute joint targets: model unit = (30 / HALF_RANGE) x (rad - READY_POSE); the gripper in LeRobot %."""
    from rynnvla_ros.control import so100_description as desc
    from rynnvla_ros.inference.robot_io import JointMap, RobotIO

    limits = desc.joint_limits()
    g = desc.JOINT_NAMES.index(desc.GRIPPER)
    lo, hi = float(limits.lower[g]), float(limits.upper[g])
    scale = _ACTION_BOUND / HALF_RANGE
    arm = [n for n in desc.JOINT_NAMES if n != desc.GRIPPER]
    joints = [JointMap(n, scale, 0.0 - scale * p, relative=False) for n, p in zip(arm, READY_POSE, strict=True)]
    joints.append(JointMap(desc.GRIPPER, 100.0 / (hi - lo), -100.0 * lo / (hi - lo), relative=False))
    return RobotIO(tuple(joints), control_period=CONTROL_PERIOD, history=1, cameras=("front", "wrist"), state=True)


def make_default_checkpoint(directory: str | Path) -> Path:
    """Write the default sim checkpoint into ``directory`` (replacing what is there)."""
    from rynnvla_ros.inference.tiny_checkpoint import make_tiny_checkpoint

    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    make_tiny_checkpoint(directory, IMAGE_SIZE, TIME_HORIZON, robot_io=default_robot_io(), seed=SEED)
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rynnvla_ros.default_model [DIR]``: (re)generate the default checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=str(Path(__file__).resolve().parents[1] / DEFAULT_CHECKPOINT))
    args = parser.parse_args(argv)
    path = make_default_checkpoint(args.directory)
    print(f"wrote {path}: {', '.join(sorted(p.name for p in path.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
