"""Normalisation statistics and the 256-bin tokenizer for action and state vectors.

RynnVLA-002 min/max-normalises every dimension to [-1, 1], digitises it against ``linspace(-1, 1, 256)`` (index
1..256) and writes index ``i`` as token ``value_first + i - 1``. Decoding maps a token back to the centre of its bin
(255 centres; the index is clamped to 0..254) and un-normalises with the same bounds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rynnvla_model.vocab import NUM_BINS

NORM_STATS_FILE = "norm_stats.json"
"""Default file name of saved :class:`NormStats`."""

EPS = 1e-8
"""Added to ``max - min`` when normalising, as the official code does."""

BINS = np.linspace(-1.0, 1.0, NUM_BINS)
"""Bin edges in normalised space."""

BIN_CENTRES = (BINS[:-1] + BINS[1:]) / 2.0
"""The 255 bin centres that tokens decode to."""

_STAT_FIELDS = ("min", "max", "q01", "q99", "mean", "std")


def _vector(name: str, value: Any, dim: int | None = None) -> np.ndarray:
    """A finite 1-D float64 array, or a ValueError naming ``name``."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{name} must have {dim} entries, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf: {arr.tolist()}")
    return arr


@dataclass(frozen=True)
class FeatureStats:
    """Per-dimension statistics of one feature (e.g. ``action`` or ``state``).

    ``min``/``max`` are required (they define the bins); the other fields are optional because the official
    LIBERO bounds are published as min/max only.
    """

    min: np.ndarray
    max: np.ndarray
    q01: np.ndarray | None = None
    q99: np.ndarray | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        lo = _vector("min", self.min)
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", _vector("max", self.max, lo.shape[0]))
        for name in _STAT_FIELDS[2:]:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _vector(name, value, lo.shape[0]))
        if np.any(self.max < self.min):
            raise ValueError(f"max must be >= min in every dimension, got min {lo.tolist()} max {self.max.tolist()}")

    @property
    def dim(self) -> int:
        """Number of dimensions."""
        return int(self.min.shape[0])

    @classmethod
    def compute(cls, array: np.ndarray) -> FeatureStats:
        """Statistics over all leading axes of ``array`` (shape (..., D)); NaN/inf are rejected."""
        arr = np.asarray(array, dtype=np.float64)
        if arr.ndim < 1 or arr.size == 0:
            raise ValueError(f"need a non-empty array of shape (..., D), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("cannot compute statistics: the data contains NaN or inf")
        flat = arr.reshape(-1, arr.shape[-1]) if arr.ndim > 1 else arr.reshape(-1, 1)
        return cls(
            min=flat.min(axis=0),
            max=flat.max(axis=0),
            q01=np.quantile(flat, 0.01, axis=0),
            q99=np.quantile(flat, 0.99, axis=0),
            mean=flat.mean(axis=0),
            std=flat.std(axis=0),
        )

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-serialisable form; absent optional fields are left out."""
        return {k: getattr(self, k).tolist() for k in _STAT_FIELDS if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureStats:
        """Inverse of :meth:`to_dict`."""
        unknown = set(d) - set(_STAT_FIELDS)
        if unknown:
            raise ValueError(f"unknown statistics {sorted(unknown)}; expected some of {list(_STAT_FIELDS)}")
        missing = {"min", "max"} - set(d)
        if missing:
            raise ValueError(f"statistics need 'min' and 'max', missing {sorted(missing)}")
        return cls(**{k: d[k] for k in _STAT_FIELDS if k in d})


class NormStats:
    """Statistics per feature key, saved as one JSON file (``norm_stats.json`` by default)."""

    def __init__(self, stats: Mapping[str, FeatureStats]) -> None:
        for key, value in stats.items():
            if not isinstance(value, FeatureStats):
                raise ValueError(f"stats[{key!r}] must be a FeatureStats, got {type(value).__name__}")
        self._stats = dict(stats)

    def __getitem__(self, key: str) -> FeatureStats:
        if key not in self._stats:
            raise KeyError(f"no statistics for {key!r}; available: {sorted(self._stats)}")
        return self._stats[key]

    def __contains__(self, key: object) -> bool:
        return key in self._stats

    def keys(self) -> list[str]:
        """Feature keys, in insertion order."""
        return list(self._stats)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NormStats) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"NormStats({ {k: v.dim for k, v in self._stats.items()} })"

    @classmethod
    def compute(cls, arrays: Mapping[str, np.ndarray]) -> NormStats:
        """Statistics of each array in ``arrays`` (e.g. ``{"action": (N, A), "state": (N, S)}``)."""
        return cls({key: FeatureStats.compute(value) for key, value in arrays.items()})

    @classmethod
    def from_min_max(cls, bounds: Mapping[str, tuple[Any, Any]]) -> NormStats:
        """Statistics with only min/max per key, e.g. the official hard-coded bounds."""
        return cls({key: FeatureStats(min=lo, max=hi) for key, (lo, hi) in bounds.items()})

    def to_dict(self) -> dict[str, dict[str, list[float]]]:
        """JSON-serialisable form."""
        return {key: value.to_dict() for key, value in self._stats.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NormStats:
        """Inverse of :meth:`to_dict`."""
        out = {}
        for key, value in d.items():
            if not isinstance(value, Mapping):
                raise ValueError(
                    f"norm stats entry {key!r} must be a mapping of statistics, got {type(value).__name__}"
                )
            try:
                out[key] = FeatureStats.from_dict(value)
            except ValueError as exc:
                raise ValueError(f"norm stats entry {key!r}: {exc}") from exc
        return cls(out)

    def save(self, path: str | Path) -> Path:
        """Write JSON to ``path`` (a directory gets ``norm_stats.json``); returns the file written."""
        path = Path(path)
        if path.is_dir():
            path = path / NORM_STATS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        """Read a file written by :meth:`save`; ``path`` may be the file or its directory."""
        path = Path(path)
        if path.is_dir():
            path = path / NORM_STATS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"normalisation statistics not found: looked for {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object of feature keys, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc


LIBERO_ACTION_MIN = (-0.9375, -0.9375, -0.9375, -0.24214286, -0.375, -0.36428571, -1.0)
LIBERO_ACTION_MAX = (0.9375, 0.9375, 0.9375, 0.34821429, 0.375, 0.375, 1.0)
LIBERO_STATE_MIN = (-0.4827807, -0.3309336, 0.00812818, 1.00279467, -3.63125079, -1.84273835, -0.00545302, -0.04201502)
LIBERO_STATE_MAX = (0.2103138, 0.39042644, 1.47277813, 3.72486417, 3.56188956, 1.3863216, 0.0423214189, 0.00131260958)


def libero_norm_stats() -> NormStats:
    """The official LIBERO bounds (7-d action, 8-d state) hard-coded in the release's VLA item processor."""
    return NormStats.from_min_max(
        {"action": (LIBERO_ACTION_MIN, LIBERO_ACTION_MAX), "state": (LIBERO_STATE_MIN, LIBERO_STATE_MAX)}
    )


def _finite(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def bin_centre_of_ids(ids: Any, value_first_id: int) -> Any:
    """Normalised bin centre of each value token (the L1 target): ``BIN_CENTRES[clip(id - value_first, 0, 254)]``.

    Accepts a numpy array / list (returns float64 numpy) or a torch tensor (returns a float32 tensor on the same
    device), so the training loss can use it directly.
    """
    if type(ids).__module__.startswith("torch"):
        import torch

        table = torch.as_tensor(BIN_CENTRES, dtype=torch.float32, device=ids.device)
        return table[(ids.long() - value_first_id).clamp(0, NUM_BINS - 2)]
    arr = np.asarray(ids)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got dtype {arr.dtype}")
    return BIN_CENTRES[np.clip(arr.astype(np.int64) - value_first_id, 0, NUM_BINS - 2)]


class BinTokenizer:
    """Tokenizes vectors of dimension D into ids ``value_first_id .. value_first_id + 255`` (one id per scalar)."""

    def __init__(self, low: Any, high: Any, value_first_id: int) -> None:
        self.low = _vector("low", low)
        self.high = _vector("high", high, self.low.shape[0])
        if np.any(self.high < self.low):
            raise ValueError(f"high must be >= low in every dimension, got low {self.low} high {self.high}")
        if value_first_id < 0:
            raise ValueError(f"value_first_id must be >= 0, got {value_first_id}")
        self.value_first_id = int(value_first_id)

    @classmethod
    def from_stats(cls, stats: FeatureStats, value_first_id: int) -> BinTokenizer:
        """A tokenizer with the min/max bounds of ``stats``."""
        return cls(stats.min, stats.max, value_first_id)

    @property
    def dim(self) -> int:
        """Number of scalars per vector."""
        return int(self.low.shape[0])

    @property
    def value_last_id(self) -> int:
        """Id of bin index 256 (the largest id ``encode`` produces)."""
        return self.value_first_id + NUM_BINS - 1

    def _check_dim(self, arr: np.ndarray, what: str) -> None:
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValueError(f"{what} must have shape (..., {self.dim}), got {arr.shape}")

    def normalise(self, x: Any) -> np.ndarray:
        """``clip(2 (x - low) / (high - low + 1e-8) - 1, -1, 1)``; NaN/inf raise ValueError."""
        arr = _finite("input", x)
        self._check_dim(arr, "input")
        return np.clip(2.0 * (arr - self.low) / (self.high - self.low + EPS) - 1.0, -1.0, 1.0)

    def denormalise(self, x_n: Any) -> np.ndarray:
        """Inverse of :meth:`normalise` (without the clip): physical units from values in [-1, 1]."""
        arr = _finite("normalised input", x_n)
        self._check_dim(arr, "normalised input")
        return (arr + 1.0) / 2.0 * (self.high - self.low + EPS) + self.low

    def encode(self, x: Any) -> np.ndarray:
        """Token ids (int64, same shape as ``x``)."""
        index = np.digitize(self.normalise(x), BINS)  # 1..256
        return (index + self.value_first_id - 1).astype(np.int64)

    def bin_centres(self, ids: Any) -> np.ndarray:
        """Normalised bin centre of each id; ids outside this tokenizer's 256 values raise ValueError."""
        arr = np.asarray(ids)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got dtype {arr.dtype}")
        self._check_dim(arr, "ids")
        bad = (arr < self.value_first_id) | (arr > self.value_last_id)
        if np.any(bad):
            raise ValueError(
                f"ids {arr[bad].tolist()[:8]} are not value tokens "
                f"(expected {self.value_first_id}..{self.value_last_id})"
            )
        return bin_centre_of_ids(arr, self.value_first_id)

    def decode(self, ids: Any) -> np.ndarray:
        """Physical values (float64, same shape as ``ids``) at the bin centres."""
        return self.denormalise(self.bin_centres(ids))

    def is_value(self, ids: Any) -> np.ndarray:
        """Boolean mask of ids that are value tokens of this tokenizer."""
        arr = np.asarray(ids)
        return (arr >= self.value_first_id) & (arr <= self.value_last_id)

    @property
    def half_bin(self) -> np.ndarray:
        """Largest round-trip error per dimension for values inside [low, high], in physical units."""
        return (self.high - self.low + EPS) / (NUM_BINS - 1) / 2.0
