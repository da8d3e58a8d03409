"""Resumable training checkpoints, written atomically.

``<output_dir>/checkpoints/step-000120/`` holds:

- ``model/``: a deployable checkpoint (config, safetensors weights, processor, robot_io.json when known), so any
  checkpoint can be given to the policy node;
- ``optimizer.pt``: optimizer and scheduler state and the step;
- ``rng-rank<r>.pt``: each rank's Python, NumPy, torch (and CUDA) random state.

A checkpoint is written into a temporary folder that is renamed into place only when complete, and
``checkpoints/latest`` (rewritten by rename too) names the newest one, so a run killed at any moment leaves either
the previous or the new checkpoint, never half of one. The output directory must be shared by all ranks.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rynnvla_model.training.distributed import DistInfo, barrier

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
MODEL_DIR = "model"
OPTIMIZER_FILE = "optimizer.pt"


def _state_options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full (unsharded, CPU) model and optimizer state of a plain, DDP or FSDP model; every rank must call it."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    return get_state_dict(model, optimizer, options=_state_options())


def rng_state() -> dict[str, Any]:
    """This process's random states, as tensors and plain values (loadable with ``weights_only=True``)."""
    version, keys, gauss = random.getstate()
    _, mt, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(keys), gauss],
        "numpy": {"keys": torch.from_numpy(mt.astype(np.int64)), "pos": int(pos), "gauss": [has_gauss, cached]},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], *n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_checkpoint(
    output_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    info: DistInfo,
    export: Callable[[dict[str, torch.Tensor], Path], None],
    keep_last: int = 2,
) -> Path:
    """Write the step-``step`` checkpoint (all ranks call this); ``export(state, dir)`` writes the deployable
    model. Returns the checkpoint folder; keeps the newest ``keep_last`` checkpoints."""
    root = output_dir / CHECKPOINTS_DIR
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    model_state, optim_state = full_state(model, optimizer)
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(info)
    torch.save(rng_state(), tmp / f"rng-rank{info.rank}.pt")
    if info.is_main:
        export(model_state, tmp / MODEL_DIR)
        torch.save(
            {
                "step": step,
                "optimizer": optim_state,
                "scheduler": scheduler.state_dict(),
                "world_size": info.world_size,
            },
            tmp / OPTIMIZER_FILE,
        )
    barrier(info)
    if info.is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _replace_text(root / LATEST_FILE, final.name + "\n")
        done = sorted(p for p in root.glob("step-*") if p.is_dir())
        for old in done[: max(0, len(done) - keep_last)]:
            shutil.rmtree(old, ignore_errors=True)
    barrier(info)
    return final


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    root = output_dir / CHECKPOINTS_DIR
    latest = root / LATEST_FILE
    if not latest.is_file():
        return None
    path = root / latest.read_text(encoding="utf-8").strip()
    return path if (path / OPTIMIZER_FILE).is_file() else None


def load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    info: DistInfo,
) -> int:
    """Restore model, optimizer, scheduler and this rank's random state from ``path``; returns its step."""
    from torch.distributed.checkpoint.state_dict import set_state_dict

    from rynnvla_model.checkpoint import read_state_dict

    missing = [p for p in (path / OPTIMIZER_FILE, path / MODEL_DIR) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"incomplete training checkpoint {path}: missing {', '.join(map(str, missing))}")
    saved = torch.load(path / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    model_state = read_state_dict(path / MODEL_DIR)
    set_state_dict(
        model, optimizer, model_state_dict=model_state, optim_state_dict=saved["optimizer"], options=_state_options()
    )
    scheduler.load_state_dict(saved["scheduler"])
    rng_file = path / f"rng-rank{info.rank}.pt"
    if saved.get("world_size") == info.world_size and rng_file.is_file():
        set_rng_state(torch.load(rng_file, weights_only=True))
    return int(saved["step"])


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically."""
    _replace_text(path, json.dumps(data, indent=2) + "\n")
