"""``RynnVLAPolicy``: model + processor behind two calls, for the ROS policy node.

* :meth:`RynnVLAPolicy.predict_chunk` -> (K, A) actions in physical units (un-normalised with the checkpoint's
  NormStats; the continuous head's output is not clipped, as in the release) + timings.
* :meth:`RynnVLAPolicy.predict_next_frames` -> the world model's next front (and wrist) uint8 images + timings.

One lock serialises every call, so the object may be shared between threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rynnvla_model.checkpoint import check_processor_fits, from_pretrained, load_official_checkpoint
from rynnvla_model.inference import MODES, predict_chunk, predict_next_frames
from rynnvla_model.modeling import RynnVLAForActionWorldModel


@dataclass
class ChunkResult:
    """One predicted action chunk."""

    actions: np.ndarray
    """(K, A) float64 actions in physical units."""
    normalized: np.ndarray
    """(K, A) float64 actions in the normalised [-1, 1] space."""
    mode: str
    prompt_tokens: int
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds: ``tokenize_ms`` (VQGAN + ids), ``model_ms``, ``total_ms``."""


@dataclass
class FramesResult:
    """The world model's prediction of the next frames."""

    images: list[np.ndarray]
    """uint8 HxWx3 images: [front] or [front, wrist]."""
    codes: list[np.ndarray]
    prompt_tokens: int
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds: ``tokenize_ms``, ``model_ms``, ``decode_ms``, ``total_ms``."""


def _finite_vector(name: str, value: Any, dim: int | None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric vector: {exc}") from exc
    if arr.ndim != 1 or (dim is not None and arr.shape[0] != dim):
        raise ValueError(f"{name} must have shape ({dim},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf: {arr.tolist()}")
    return arr


class RynnVLAPolicy:
    """Thread-safe inference front end over a :class:`RynnVLAForActionWorldModel` and its processor."""

    def __init__(
        self, model: RynnVLAForActionWorldModel, processor: Any, mode: str = "continuous", parallel: bool = True
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        check_processor_fits(model, processor)
        self.model = model.eval()
        self.processor = processor
        self.mode = mode
        self.parallel = parallel
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        mode: str = "continuous",
        parallel: bool = True,
    ) -> RynnVLAPolicy:
        """Load a checkpoint directory written by :func:`rynnvla_model.checkpoint.save_pretrained`."""
        model, processor = from_pretrained(directory, device, dtype)
        processor.to(device)
        return cls(model, processor, mode, parallel)

    @classmethod
    def from_official(
        cls,
        checkpoint_dir: str | Path,
        tokenizer_dir: str | Path,
        norm_stats: Any,
        action_dim: int | None = None,
        time_horizon: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        mode: str = "continuous",
        image_size: int = 256,
    ) -> RynnVLAPolicy:
        """Load an official RynnVLA-002 checkpoint (see :func:`load_official_checkpoint`)."""
        model, processor = load_official_checkpoint(
            checkpoint_dir, tokenizer_dir, norm_stats, action_dim, time_horizon, device, dtype, image_size
        )
        processor.to(device)
        return cls(model, processor, mode)

    # ---------------------------------------------------------------- properties
    @property
    def action_dim(self) -> int:
        return self.model.action_dim

    @property
    def world_model_horizon(self) -> int:
        """H: the frames :meth:`predict_next_frames` returns are H control steps after its inputs (1 by default)."""
        return int(getattr(self.model.config, "world_model_horizon", 1))

    @property
    def time_horizon(self) -> int:
        return self.model.time_horizon

    @property
    def image_size(self) -> tuple[int, int]:
        return self.processor.image_size

    # ---------------------------------------------------------------- calls
    def predict_chunk(
        self,
        task: str,
        state: Any,
        front_frames: Any,
        wrist_frames: Any = None,
        mode: str | None = None,
    ) -> ChunkResult:
        """(K, A) physical actions for ``task`` from the state and uint8 RGB frames (oldest first)."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        state_dim = self.processor.state_dim
        if state is None:
            if state_dim is not None:
                raise ValueError(f"this policy needs a state vector of {state_dim} values, got None")
        else:
            if state_dim is None:
                raise ValueError("this policy was trained without a state; pass state=None")
            state = _finite_vector("state", state, state_dim)
        with self._lock:
            t0 = time.perf_counter()
            prompt = self.processor.vla_prompt_from_images(task, state, front_frames, wrist_frames)
            t1 = time.perf_counter()
            pred = predict_chunk(self.model, [prompt], mode=mode, parallel=self.parallel)
            normalized = pred.actions[0].double().cpu().numpy()
            t2 = time.perf_counter()
        if not np.all(np.isfinite(normalized)):
            raise RuntimeError("the model produced non-finite actions (check the checkpoint and dtype)")
        actions = self.processor.action_tokenizer.denormalise(normalized)
        t3 = time.perf_counter()
        timings = {"tokenize_ms": (t1 - t0) * 1e3, "model_ms": (t2 - t1) * 1e3, "total_ms": (t3 - t0) * 1e3}
        return ChunkResult(actions, normalized, mode, int(prompt.shape[0]), timings)

    def predict_next_frames(self, front: np.ndarray, wrist: np.ndarray | None, action: Any) -> FramesResult:
        """The next front (and wrist, when given) frame after executing ``action`` (physical units)."""
        action = _finite_vector("action", action, self.action_dim)
        n_images = 1 if wrist is None else 2
        with self._lock:
            t0 = time.perf_counter()
            prompt = self.processor.world_model_prompt_from_images(front, wrist, action)
            t1 = time.perf_counter()
            latent = self.processor.image_tokenizer.latent_shape
            pred = predict_next_frames(self.model, [prompt], latent, n_images)
            t2 = time.perf_counter()
            images = self.processor.decode_images(pred.token_ids[0].cpu().numpy())
            t3 = time.perf_counter()
        timings = {
            "tokenize_ms": (t1 - t0) * 1e3,
            "model_ms": (t2 - t1) * 1e3,
            "decode_ms": (t3 - t2) * 1e3,
            "total_ms": (t3 - t0) * 1e3,
        }
        return FramesResult(list(images), pred.codes[0], int(prompt.shape[0]), timings)
