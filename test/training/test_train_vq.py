"""rynnvla-train-vq on a generated dataset, and the dead-code restart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from synthetic import circling_dataset

from rynnvla_model.training.vq import backgrounds, main, make_vqgan, reconstruction_loss, restart_dead_codes
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


def test_backgrounds_are_per_camera_medians() -> None:
    images = np.zeros((5, 4, 4, 3), np.uint8)
    images[[1, 3]] = 255  # the wrist frames
    images[0, 0, 0] = 255  # a front frame's foreground pixel is not the median
    background = backgrounds(images, np.array([0, 1, 0, 1, 0]))
    assert background.shape == (2, 4, 4, 3)
    assert np.all(background[0] == 0) and np.all(background[1] == 1)


def test_foreground_pixels_weigh_more() -> None:
    background = torch.zeros(1, 3, 8, 8)
    x = background.clone()
    x[..., 0, 0] = 1.0  # one foreground pixel
    plain = reconstruction_loss(background, x, None, 0.0)
    assert plain == reconstruction_loss(background, x, background, 0.0)
    missed_object = reconstruction_loss(background, x, background, 10.0)  # the object reconstructed as background
    blurred_table = x.clone()
    blurred_table[..., 4, 4] = 1.0  # the same error on a background pixel
    wrong_table = reconstruction_loss(blurred_table, x, background, 10.0)
    assert missed_object > plain and missed_object > 5 * wrong_table


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
    assert main([*args[:3], str(tmp_path / "vq_fg"), *args[4:], "--foreground-weight", "5"]) == 0
    assert json.loads((tmp_path / "vq_fg" / "metrics.json").read_text())["psnr"] > 12
    assert main([*args[:3], str(tmp_path / "vq_local"), *args[4:], "--local"]) == 0
    assert load_vqgan(tmp_path / "vq_local").config.local
    assert json.loads((tmp_path / "vq_local" / "metrics.json").read_text())["psnr"] > 12
