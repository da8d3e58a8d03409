"""Normalisation statistics and the 256-bin action/state tokenizer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rynnvla_model.action_tokenizer import (
    BIN_CENTRES,
    BinTokenizer,
    FeatureStats,
    NormStats,
    bin_centre_of_ids,
    libero_norm_stats,
)


def test_official_action_and_state_id_ranges() -> None:
    stats = libero_norm_stats()
    action = BinTokenizer.from_stats(stats["action"], 10006)
    state = BinTokenizer.from_stats(stats["state"], 15506)
    lo, hi = stats["action"].min, stats["action"].max
    assert action.encode(lo).tolist() == [10006] * 7
    assert action.encode(hi + 1.0).tolist() == [10261] * 7  # clipped to 1 -> digitize index 256
    assert state.encode(stats["state"].min).tolist() == [15506] * 8
    assert state.encode(stats["state"].max + 1.0).tolist() == [15761] * 8
    # the gripper at exactly +1 lands just below 1 after the 1e-8 epsilon: index 255 -> 10260
    assert action.encode(np.array([0, 0, 0, 0, 0, 0, 1.0]))[-1] == 10260
    ids = action.encode(np.random.default_rng(0).uniform(lo - 1, hi + 1, size=(100, 7)))
    assert ids.min() >= 10006 and ids.max() <= 10261 and ids.dtype == np.int64


def test_normalise_digitize_and_decode_follow_the_release() -> None:
    tok = BinTokenizer([-2.0], [2.0], value_first_id=100)
    x = np.array([[-2.0], [0.0], [0.01], [1.999], [2.0], [5.0]])
    x_n = np.clip(2 * (x + 2.0) / (4.0 + 1e-8) - 1, -1, 1)
    assert np.allclose(tok.normalise(x), x_n)
    assert tok.encode(x)[:, 0].tolist() == (np.digitize(x_n, np.linspace(-1, 1, 256)) + 99)[:, 0].tolist()
    ids = np.array([[100], [227], [354], [355]])
    # idx = clip(id - first, 0, 254); value = bin centre, then un-normalised
    expected = (BIN_CENTRES[[0, 127, 254, 254]] + 1) / 2 * (4.0 + 1e-8) - 2.0
    assert np.allclose(tok.decode(ids)[:, 0], expected)
    assert len(BIN_CENTRES) == 255 and np.isclose(BIN_CENTRES[0], -1 + 1 / 255)


def test_round_trip_within_half_a_bin() -> None:
    rng = np.random.default_rng(1)
    lo, hi = np.array([-1.0, 0.0, 10.0]), np.array([1.0, 0.5, 30.0])
    tok = BinTokenizer(lo, hi, 0)
    x = rng.uniform(lo, hi, size=(500, 3))
    err = np.abs(tok.decode(tok.encode(x)) - x)
    assert np.all(err <= tok.half_bin + 1e-12)
    assert np.allclose(tok.denormalise(tok.normalise(x)), x)


def test_bin_centre_of_ids_numpy_and_torch() -> None:
    ids = np.array([[10006, 10133, 10261, 10005]])
    got = bin_centre_of_ids(ids, 10006)
    assert np.allclose(got, BIN_CENTRES[[0, 127, 254, 0]])
    t = bin_centre_of_ids(torch.as_tensor(ids), 10006)
    assert t.dtype == torch.float32 and torch.allclose(t, torch.as_tensor(got, dtype=torch.float32))


def test_bad_values_are_rejected() -> None:
    tok = BinTokenizer([0.0, 0.0], [1.0, 1.0], 10)
    with pytest.raises(ValueError, match="NaN or inf"):
        tok.encode([np.nan, 0.0])
    with pytest.raises(ValueError, match="NaN or inf"):
        tok.encode([np.inf, 0.0])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        tok.encode([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="not value tokens"):
        tok.decode([9, 10])
    with pytest.raises(ValueError, match="integers"):
        tok.decode([10.0, 11.0])
    with pytest.raises(ValueError, match="high must be >= low"):
        BinTokenizer([1.0], [0.0], 0)
    with pytest.raises(ValueError, match="2 entries"):
        BinTokenizer([0.0, 0.0], [1.0], 0)


def test_norm_stats_compute_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    actions = rng.normal(size=(200, 5, 6))  # chunks: statistics over all leading axes
    state = rng.normal(size=(200, 6))
    stats = NormStats.compute({"action": actions, "state": state})
    flat = actions.reshape(-1, 6)
    assert np.allclose(stats["action"].min, flat.min(0)) and np.allclose(
        stats["action"].q99, np.quantile(flat, 0.99, 0)
    )
    assert np.allclose(stats["state"].std, state.std(0)) and stats["state"].dim == 6
    written = stats.save(tmp_path)
    assert written == tmp_path / "norm_stats.json"
    assert NormStats.load(tmp_path) == stats and NormStats.load(written) == stats
    assert libero_norm_stats()["state"].q01 is None
    assert NormStats.load(libero_norm_stats().save(tmp_path / "l.json")) == libero_norm_stats()


def test_norm_stats_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "norm_stats.json"))):
        NormStats.load(tmp_path)
    with pytest.raises(ValueError, match="NaN or inf"):
        FeatureStats.compute(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="must have 2 entries"):
        FeatureStats(min=[0.0, 0.0], max=[1.0, 1.0], mean=[0.0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"action": {"min": [0.0], "max": [1.0, 2.0]}}))
    with pytest.raises(ValueError, match=r"'action'.*max must have 1 entries"):
        NormStats.load(bad)
    bad.write_text(json.dumps({"action": {"min": [0.0], "max": [float("nan")]}}))
    with pytest.raises(ValueError, match="NaN"):
        NormStats.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        NormStats.load(bad)
    with pytest.raises(KeyError, match="available"):
        libero_norm_stats()["joint"]
