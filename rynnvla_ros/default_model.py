"""The sim profile's default checkpoint: the RynnVLA model trained on the simulated block-in-circle task.

``rynnvla-bringup so100``, ``ros2 launch rynnvla_ros so100.launch.py`` (sim), ``rynnvla-eval-sim`` and ``make demo``
load :data:`DEFAULT_CHECKPOINT` when no ``checkpoint`` is given, with the task's instruction. The checkpoint is made
by ``scripts/so100_sim_model.sh`` (models/README.md: the commands, its validation and its evaluation).
"""

from __future__ import annotations

from pathlib import Path

from rynnvla_ros.tasks.block_in_circle import TASK_TEXT

DEFAULT_CHECKPOINT = "models/so100_block_in_circle"
"""The default checkpoint of the sim profile, relative to the package (source tree or installed share directory)."""
DEFAULT_TASK = TASK_TEXT
"""The sim profile's default task instruction: the one the default model was trained on."""


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
