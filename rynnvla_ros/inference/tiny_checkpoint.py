"""A tiny random RynnVLA checkpoint with a ``robot_io.json``, for tests, demos and the latency benchmark.

The model is untrained (its actions and frames are noise) but has the real structure: compact vocabulary, a tiny
VQGAN, state and action bins in LeRobot SO100 units, K x 6 actions (or, with :func:`make_tiny_libero_checkpoint`,
LIBERO's 8-d state, K x 7 end-effector-delta actions and the release's LIBERO normalisation bounds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rynnvla_ros.inference.robot_io import RobotIO, so100_lerobot


def make_tiny_checkpoint(
    directory: str | Path,
    image_size: int = 64,
    time_horizon: int = 20,
    robot_io: RobotIO | None = None,
    seed: int = 0,
) -> Path:
    """Write a tiny checkpoint (``time_horizon`` steps) and its robot I/O into ``directory``.

    ``robot_io`` defaults to the official SO100 convention (:func:`so100_lerobot`: 6-d state and action); a mapping
    with end-effector actions gets LIBERO's normalisation bounds (:func:`libero_norm_stats`).
    """
    import torch

    from rynnvla_model.action_tokenizer import NormStats, libero_norm_stats
    from rynnvla_model.checkpoint import save_pretrained
    from rynnvla_model.config import RynnVLAConfig
    from rynnvla_model.modeling import RynnVLAForActionWorldModel
    from rynnvla_model.processor import processor_for_compact
    from rynnvla_model.vqgan import VQGAN, VQGANConfig

    io = robot_io or so100_lerobot()
    dim = io.dim
    torch.manual_seed(seed)
    vqgan = VQGAN(VQGANConfig.tiny(n_embed=16, downsample_factor=16)).eval()
    if io.joint_actions:
        stats = NormStats.from_min_max(
            {
                "action": (np.r_[np.full(dim - 1, -30.0), 0.0], np.r_[np.full(dim - 1, 30.0), 100.0]),
                "state": (np.r_[np.full(dim - 1, -180.0), 0.0], np.r_[np.full(dim - 1, 180.0), 100.0]),
            }
        )
    else:
        stats = libero_norm_stats()
        if (stats["action"].dim, stats["state"].dim) != (io.action_dim, dim):
            raise ValueError(f"LIBERO's bounds are 7-d action / 8-d state, the robot I/O {io.action_dim} / {dim}")
    processor = processor_for_compact(vqgan, stats, image_size=image_size, state_key="state" if io.state else None)
    config = RynnVLAConfig.tiny(action_dim=io.action_dim, time_horizon=time_horizon, codebook_size=16)
    directory = Path(directory)
    save_pretrained(RynnVLAForActionWorldModel(config).eval(), processor, directory)
    io.save(directory)
    return directory


def make_tiny_libero_checkpoint(
    directory: str | Path, image_size: int = 32, time_horizon: int = 5, seed: int = 0
) -> Path:
    """A tiny LIBERO checkpoint: 8-d state, K x 7 end-effector actions, front + wrist with history 2."""
    from rynnvla_ros.libero.protocol import libero_robot_io

    return make_tiny_checkpoint(directory, image_size, time_horizon, libero_robot_io(), seed)
