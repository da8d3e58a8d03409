"""Training samples from a LeRobot dataset: which rows make VLA and world-model samples, and their targets.

A *VLA sample* at row t of an episode holds the task text, the state s_t (optional), the front (and wrist) frames
t - (M-1)·stride … t (frames before the episode start are left out, as the release does at t = 0) and the chunk
a_t … a_{t+K-1} (rows past the episode end repeat the last action). Dimensions in ``relative_dims`` are targets
relative to the current state, a_{t+k} - s_t (the official SO100 option: joints 0-4 relative, gripper absolute).

A *world-model sample* at row t holds the front (and wrist) frame t and the action a_{t+H-1} (transformed the same
way: relative dims minus s_t), and predicts the frames t+H, H = ``world_model_horizon`` (1, the release: the first
action of the chunk and the next frame). They are mixed in at ``world_model_ratio`` per VLA sample.

Episodes are split 90/10 (``val_fraction``) into training and validation sets; the split is saved as JSON
(``{"train_episodes": [...], "val_episodes": [...]}``) beside the run so evaluation uses the same held-out episodes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLIT_FILE = "split.json"
KIND_VLA = "vla"
KIND_WORLD_MODEL = "world_model"


@dataclass(frozen=True)
class SampleSpec:
    """How samples are cut from episodes."""

    history: int = 1
    """M: frames per camera in a VLA prompt (the current one and M-1 earlier ones)."""
    history_stride: int = 1
    """Rows between consecutive history frames (the model's control period in dataset frames)."""
    time_horizon: int = 5
    """K: actions per chunk."""
    use_wrist: bool = True
    use_state: bool = True
    relative_dims: tuple[int, ...] = ()
    """Action dimensions predicted as deltas to the current state (they need state and action of equal width)."""
    world_model_ratio: float = 1.0
    """World-model samples per VLA sample (0 disables them; 1 is one of each per frame, as the release)."""
    world_model_horizon: int = 1
    """H: rows between a world-model sample's frame and the frame it predicts (at most K)."""

    def __post_init__(self) -> None:
        if self.history < 1 or self.history_stride < 1 or self.time_horizon < 1:
            raise ValueError("history, history_stride and time_horizon must be >= 1")
        if not 1 <= self.world_model_horizon <= self.time_horizon:
            h, k = self.world_model_horizon, self.time_horizon
            raise ValueError(f"world_model_horizon must be in [1, K={k}], got {h}")
        if self.world_model_ratio < 0:
            raise ValueError(f"world_model_ratio must be >= 0, got {self.world_model_ratio}")
        if len(set(self.relative_dims)) != len(self.relative_dims) or any(d < 0 for d in self.relative_dims):
            raise ValueError(f"relative_dims must be distinct non-negative indices, got {self.relative_dims}")


@dataclass(frozen=True)
class SampleRef:
    """One sample: its kind and the global dataset row of its current frame t."""

    kind: str
    row: int


@dataclass(frozen=True)
class EpisodeSplit:
    """Training and validation episode indices."""

    train_episodes: list[int]
    val_episodes: list[int] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        """Write the split as JSON."""
        path = Path(path)
        path.write_text(json.dumps({"train_episodes": self.train_episodes, "val_episodes": self.val_episodes}) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EpisodeSplit:
        """Read a split written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        return cls([int(e) for e in data["train_episodes"]], [int(e) for e in data["val_episodes"]])


def split_episodes(num_episodes: int, val_fraction: float = 0.1, seed: int = 0) -> EpisodeSplit:
    """A seeded random split with ``round(val_fraction * n)`` validation episodes (at least 1 when the fraction
    is positive and there are 2 or more episodes)."""
    if num_episodes < 1:
        raise ValueError("the dataset has no episodes")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(val_fraction * num_episodes)
    if val_fraction > 0 and num_episodes >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, num_episodes - 1)
    order = np.random.default_rng(seed).permutation(num_episodes)
    return EpisodeSplit(sorted(int(e) for e in order[n_val:]), sorted(int(e) for e in order[:n_val]))


def chunk_targets(actions: np.ndarray, states: np.ndarray, row: int, stop: int, spec: SampleSpec) -> np.ndarray:
    """(K, A) targets of the chunk at ``row`` (episode rows end at ``stop``), relative dims minus the state."""
    rows = np.minimum(np.arange(row, row + spec.time_horizon), stop - 1)
    target = actions[rows].astype(np.float64)
    if spec.relative_dims:
        dims = list(spec.relative_dims)
        target[:, dims] -= states[row, dims].astype(np.float64)
    return target


def world_model_action(actions: np.ndarray, states: np.ndarray, row: int, stop: int, spec: SampleSpec) -> np.ndarray:
    """(A,) the action of the world-model sample at ``row``: the chunk target H - 1 steps ahead."""
    return chunk_targets(actions, states, row, stop, spec)[spec.world_model_horizon - 1]


def history_rows(row: int, start: int, spec: SampleSpec) -> list[int]:
    """Rows of the history frames of a VLA sample at ``row`` (oldest first), none before the episode ``start``."""
    rows = [row - i * spec.history_stride for i in range(spec.history - 1, -1, -1)]
    return [r for r in rows if r >= start]


def sample_refs(episode_ranges: Sequence[tuple[int, int]], spec: SampleSpec, seed: int = 0) -> list[SampleRef]:
    """VLA samples at every row of the episodes, plus ``world_model_ratio`` world-model samples per VLA sample
    drawn (seeded, without replacement while they last) from the rows that have a frame H rows later."""
    vla: list[SampleRef] = []
    wm_rows: list[int] = []
    for start, stop in episode_ranges:
        vla += [SampleRef(KIND_VLA, r) for r in range(start, stop)]
        wm_rows += list(range(start, stop - spec.world_model_horizon))
    n_wm = round(spec.world_model_ratio * len(vla))
    if n_wm == 0 or not wm_rows:
        return vla
    rng = np.random.default_rng(seed)
    picks: list[int] = []
    while len(picks) < n_wm:
        perm = rng.permutation(len(wm_rows))
        picks += [wm_rows[i] for i in perm[: n_wm - len(picks)]]
    return vla + [SampleRef(KIND_WORLD_MODEL, r) for r in sorted(picks)]


def target_arrays(
    actions: np.ndarray, states: np.ndarray, episode_ranges: Sequence[tuple[int, int]], spec: SampleSpec
) -> np.ndarray:
    """(N·K, A) every chunk target of the episodes' VLA samples (for normalisation statistics)."""
    parts = [
        chunk_targets(actions, states, r, stop, spec) for start, stop in episode_ranges for r in range(start, stop)
    ]
    if not parts:
        raise ValueError("no samples in the given episodes")
    return np.concatenate(parts)
