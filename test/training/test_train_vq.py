"""rynnvla-train-vq on a generated dataset, and the dead-code restart."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from synthetic import circling_dataset

from rynnvla_model.training.vq import main, make_vqgan, restart_dead_codes
from rynnvla_model.vqgan import load_vqgan


def test_restart_moves_only_unused_codes() -> None:
    vqgan = make_vqgan("tiny", 8)
    before = vqgan.quantize.embedding.weight.detach().clone()
    usage = torch.tensor([3, 0, 1, 0, 5, 5, 5, 5])
    latents = torch.full((10, before.shape[1]), 7.0)
    assert restart_dead_codes(vqgan, usage, latents) == 2
    after = vqgan.quantize.embedding.weight.detach()
    assert torch.equal(after[[0, 2, 4, 5, 6, 7]], before[[0, 2, 4, 5, 6, 7]])
    assert torch.all(after[[1, 3]] == 7.0)


def test_train_vq_writes_a_loadable_tokenizer_that_reconstructs(tmp_path: Path) -> None:
    ds = circling_dataset(tmp_path / "ds", episodes=4, length=6)
    out = tmp_path / "vq"
    args = ["--root", str(ds), "--output", str(out), "--image-size", "32", "--preset", "tiny",
            "--codebook-size", "16", "--steps", "60", "--batch-size", "8", "--restart-every", "20",
            "--val-fraction", "0.25", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_images"] == 36 and metrics["val_images"] == 12
    assert metrics["psnr"] > 12 and 0 < metrics["code_usage"] <= 1
    vqgan = load_vqgan(out)
    assert vqgan.config.n_embed == 16
    assert main(["--root", str(tmp_path / "missing"), "--output", str(out)]) == 2
