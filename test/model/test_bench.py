"""The speed benchmark runs on a tiny config, prints a table and writes JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rynnvla_model.bench import main

MEASUREMENTS = ("continuous", "discrete_sequential", "discrete_parallel", "world_model")


def test_tiny_benchmark_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "bench.json"
    argv = ["model", "--config", "tiny", "--device", "cpu", "--image-latent", "4", "--reps", "2", "--warmup", "1"]
    assert main([*argv, "--time-horizon", "3", "--action-dim", "4", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["config"] == "tiny" and report["dtype"] == "float32" and report["attn_implementation"] == "sdpa"
    assert report["images_in_prompt"] == 4
    assert report["vla_prompt_tokens"] == 1 + 24 + 10 + 4 * (3 + 4 * 5 + 1) + 1
    for name in MEASUREMENTS:
        r = report["results"][name]
        assert r["reps"] == 2 and 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"]
    assert report["results"]["discrete_sequential"]["forward_passes"] == 3 * 4
    assert report["results"]["discrete_parallel"]["forward_passes"] == 1 + 4
    assert report["results"]["world_model"]["frames"] == 2
    assert report["peak_memory_mb"] > 0 and report["peak_memory_kind"] == "cpu_peak_rss"
    table = capsys.readouterr().out
    assert all(name in table for name in MEASUREMENTS) and "peak memory" in table


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["model", "--config", "huge"])
    with pytest.raises(SystemExit):
        main(["model", "--reps", "0"])
    if not torch.cuda.is_available():
        assert main(["model", "--device", "cuda", "--skip-world-model"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
