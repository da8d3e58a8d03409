"""Normalisation statistics of a converted dataset's state and action, saved beside it as ``norm_stats.json``."""

from __future__ import annotations

from pathlib import Path

from rynnvla_model.action_tokenizer import NORM_STATS_FILE, NormStats
from rynnvla_model.data.lerobot_source import LeRobotSource, SourceKeys


def dataset_stats(root: str | Path, state_key: str = "observation.state", action_key: str = "action") -> NormStats:
    """Per-dimension min/max/q01/q99/mean/std of every row's state (``"state"``) and action (``"action"``)."""
    source = LeRobotSource(root, SourceKeys(front=None, wrist=None, state=state_key, action=action_key))
    if len(source) == 0:
        raise ValueError(f"{root}: the dataset has no frames, statistics are undefined")
    return NormStats.compute({"state": source.states(), "action": source.actions()})


def write_dataset_stats(
    root: str | Path,
    state_key: str = "observation.state",
    action_key: str = "action",
    output: str | Path | None = None,
) -> Path:
    """Compute :func:`dataset_stats` and save them (default: ``<root>/norm_stats.json``); returns the file."""
    stats = dataset_stats(root, state_key, action_key)
    return stats.save(Path(output) if output is not None else Path(root) / NORM_STATS_FILE)
