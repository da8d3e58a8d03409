"""Loading a :class:`~rynnvla_model.policy.RynnVLAPolicy` once per process.

Nodes describe the model with a :class:`ModelSpec` (their parameters). :func:`load_policy` keeps loaded models in
a weak cache keyed by the resolved checkpoint path(s), device and dtype, so the ``policy`` and ``world_model`` nodes
of one process (``rynnvla-bringup``) share one copy; it is freed when no node holds it any more. Separate processes
each load their own. Every missing input is reported with the parameter that names it and the path looked at.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
MODES = ("continuous", "discrete")


class ModelLoadError(RuntimeError):
    """The model cannot be loaded; the message names what is missing and where it was looked for."""


@dataclass(frozen=True)
class ModelSpec:
    """Which checkpoint to load and how (the nodes' model parameters)."""

    checkpoint: str = ""
    official_checkpoint: str = ""
    tokenizer_dir: str = ""
    norm_stats: str = ""
    action_dim: int = 0
    time_horizon: int = 0
    image_size: int = 256
    device: str = "auto"
    dtype: str = "auto"

    @property
    def official(self) -> bool:
        return bool(self.official_checkpoint)

    @property
    def model_dir(self) -> Path:
        """The checkpoint directory (where ``robot_io.json`` is looked for)."""
        return Path(self.official_checkpoint or self.checkpoint).expanduser().resolve()

    def check(self) -> None:
        """ModelLoadError naming the parameter and path of anything missing."""
        if self.checkpoint and self.official_checkpoint:
            raise ModelLoadError("set either checkpoint or official_checkpoint, not both")
        if not self.checkpoint and not self.official_checkpoint:
            raise ModelLoadError(
                "no model given: set the parameter checkpoint (a directory written by "
                "rynnvla_model.checkpoint.save_pretrained) or official_checkpoint with tokenizer_dir and norm_stats"
            )
        _need_dir(
            "checkpoint" if self.checkpoint else "official_checkpoint", self.checkpoint or self.official_checkpoint
        )
        if self.official:
            _need_dir("tokenizer_dir", self.tokenizer_dir, "the release's chameleon/tokenizer folder")
            if not self.norm_stats:
                raise ModelLoadError("official_checkpoint needs norm_stats: the path of a norm_stats.json")
            if not Path(self.norm_stats).expanduser().is_file():
                raise ModelLoadError(f"norm_stats file not found: {Path(self.norm_stats).expanduser().resolve()}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ModelLoadError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ModelLoadError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    def key(self) -> tuple[Any, ...]:
        """Cache key: resolved paths, device and dtype."""
        paths = [str(Path(p).expanduser().resolve()) if p else "" for p in self._paths()]
        return (*paths, self.action_dim, self.time_horizon, self.image_size, resolve_device(self.device), self.dtype)

    def _paths(self) -> tuple[str, ...]:
        if self.official:
            return (self.official_checkpoint, self.tokenizer_dir, self.norm_stats)
        return (self.checkpoint,)


def _need_dir(param: str, value: str, what: str = "") -> None:
    if not value:
        raise ModelLoadError(f"parameter {param} is empty" + (f": set it to {what}" if what else ""))
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise ModelLoadError(f"{param} directory not found: {path}")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str) -> Any:
    """A torch dtype, or None for ``auto`` (the model package's default for the device)."""
    import torch

    return None if dtype == "auto" else getattr(torch, dtype)


_cache: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def load_policy(spec: ModelSpec) -> Any:
    """The :class:`RynnVLAPolicy` of ``spec``: the one already loaded in this process, or a new one."""
    spec.check()
    key = spec.key()
    with _lock:
        policy = _cache.get(key)
        if policy is not None:
            return policy
        policy = _load(spec)
        _cache[key] = policy
        return policy


def cached_policies() -> int:
    """How many models are loaded in this process (for tests and diagnostics)."""
    return len(_cache)


def _load(spec: ModelSpec) -> Any:
    from rynnvla_model.policy import RynnVLAPolicy

    device, dtype = resolve_device(spec.device), resolve_dtype(spec.dtype)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {device} requested but CUDA is not available (use device:=cpu or auto)")
    try:
        if spec.official:
            return RynnVLAPolicy.from_official(
                spec.official_checkpoint,
                spec.tokenizer_dir,
                spec.norm_stats,
                spec.action_dim or None,
                spec.time_horizon or None,
                device=device,
                dtype=dtype,
                image_size=spec.image_size,
            )
        return RynnVLAPolicy.from_pretrained(spec.checkpoint, device=device, dtype=dtype)
    except (OSError, ValueError) as exc:  # CheckpointError is a ValueError; missing files are OSErrors
        raise ModelLoadError(
            f"cannot load {'official checkpoint' if spec.official else 'checkpoint'} {spec.model_dir}: {exc}"
        ) from exc
