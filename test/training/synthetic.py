"""A small generated LeRobot dataset with a learnable policy, and a tiny VQGAN, for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rynnvla_model.data.lerobot_io import finish_dataset, save_episode

FRONT, WRIST = "observation.images.front", "observation.images.wrist"
STEP_ANGLE = np.pi / 4
RADII = (0.4, 0.8)


def circling_dataset(root: Path, episodes: int = 6, length: int = 12, size: int = 32, seed: int = 0) -> Path:
    """Episodes of a 2-d point circling the origin (radius from RADII, start angle a multiple of STEP_ANGLE, one
    STEP_ANGLE per frame).

    The state is the position and the action the next position: a rotation of the state, so a policy that reads
    the state can predict it, while the mean action is a poor guess. The states take 16 values, so a tiny model
    sees each often enough in a few hundred frames. The front image shows the point as a square,
    the wrist image a bar whose length is the radius.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    rng = np.random.default_rng(seed)
    features = {
        FRONT: {"dtype": "video", "shape": (size, size, 3), "names": ["height", "width", "channels"]},
        WRIST: {"dtype": "video", "shape": (size, size, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
    }
    ds = LeRobotDataset.create("test/circling", fps=10, features=features, root=root, video_backend="pyav")
    for _ in range(episodes):
        radius = float(rng.choice(RADII))
        angle = STEP_ANGLE * int(rng.integers(8))
        for _ in range(length):
            pos = radius * np.array([np.cos(angle), np.sin(angle)])
            nxt = radius * np.array([np.cos(angle + STEP_ANGLE), np.sin(angle + STEP_ANGLE)])
            front = np.zeros((size, size, 3), np.uint8)
            px, py = np.clip(((pos + 1) / 2 * (size - 8)).astype(int), 0, size - 8)
            front[py : py + 8, px : px + 8] = (255, 200, 0)
            wrist = np.zeros((size, size, 3), np.uint8)
            wrist[: size // 4, : max(1, int(radius * size))] = (0, 200, 255)
            ds.add_frame(
                {
                    FRONT: front,
                    WRIST: wrist,
                    "observation.state": pos.astype(np.float32),
                    "action": nxt.astype(np.float32),
                    "task": "circle the origin",
                }
            )
            angle += STEP_ANGLE
        save_episode(ds)
    finish_dataset(ds, root)
    return root


def tiny_vqgan(directory: Path, seed: int = 0) -> Path:
    """A random tiny VQGAN (16 codes, 16x downsampling) saved in ``directory``."""
    import torch

    from rynnvla_model.vqgan import VQGAN, VQGANConfig

    torch.manual_seed(seed)
    return VQGAN(VQGANConfig.tiny(n_embed=16, downsample_factor=16)).save(directory)
