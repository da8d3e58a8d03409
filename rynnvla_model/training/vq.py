"""``rynnvla-train-vq``: train a small VQGAN image tokenizer on a LeRobot dataset's camera frames.

For small models trained from scratch (the compact vocabulary): Chameleon's 8192-code VQGAN is far larger than a
CPU model needs. The objective is the VQ-VAE one: L1 + MSE reconstruction, the codebook term and ``beta`` times
the commitment term; codes unused for ``restart_every`` steps are restarted on random encoder outputs of the
current batch, so a small codebook stays in use. With ``foreground_weight`` W > 0 the reconstruction terms weigh
each pixel that differs from its camera's static background (the per-pixel median of that camera's training frames)
by more than FOREGROUND_THRESHOLD 1 + W times: small objects (a 3-pixel block in a 64-pixel view) otherwise cost so
little that the codebook spends nothing on them and the policy, seeing only tokens, cannot find them.
(No adversarial or perceptual loss: their backbones would need downloaded weights.) Frames of held-out episodes
give the validation PSNR/SSIM and the code usage.

Output: ``<output>/config.json`` and ``model.safetensors`` (load with ``rynnvla_model.vqgan.load_vqgan``; give the
folder to ``rynnvla-train --model.vqgan``) and ``<output>/metrics.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

from rynnvla_model.data.lerobot_source import LeRobotSource, SourceKeys
from rynnvla_model.data.samples import split_episodes
from rynnvla_model.image_tokenizer import pixels_from_uint8, resize, uint8_from_pixels
from rynnvla_model.training.distributed import pick_device
from rynnvla_model.vqgan import VQGAN, VQGANConfig

FOREGROUND_THRESHOLD = 0.1  # mean absolute difference to the background (pixel range [0, 1]) that marks foreground


def load_frames(source: LeRobotSource, episodes: list[int], size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 3) uint8: every ``stride``-th frame of every camera of ``episodes``, and (N,) the camera of
    each (0 front, 1 wrist)."""
    images, cameras = [], []
    for e in episodes:
        for i, frame in enumerate(source.episode_frames(e)):
            if i % stride == 0:
                for camera, img in enumerate((frame.front, frame.wrist)):
                    if img is not None:
                        images.append(resize(img, size))
                        cameras.append(camera)
    if not images:
        raise ValueError(f"no frames in episodes {episodes} of {source.root}")
    return np.stack(images), np.array(cameras)


def backgrounds(images: np.ndarray, cameras: np.ndarray, max_frames: int = 2000) -> np.ndarray:
    """(C, H, W, 3) float in [0, 1]: each camera's per-pixel median over (up to ``max_frames`` of) its frames."""
    out = []
    for camera in range(int(cameras.max()) + 1):
        frames = images[cameras == camera]
        frames = frames[:: max(1, len(frames) // max_frames)]
        out.append(np.median(frames, axis=0) / 255.0)
    return np.stack(out).astype(np.float32)


def reconstruction_loss(
    out: torch.Tensor, x: torch.Tensor, background: torch.Tensor | None, weight: float
) -> torch.Tensor:
    """L1 + MSE between the reconstruction and ``x`` (B, 3, H, W) in [-1, 1]; pixels further than
    FOREGROUND_THRESHOLD from ``background`` (B, 3, H, W in [-1, 1], or None) weigh 1 + ``weight``."""
    if background is None or weight == 0:
        return F.l1_loss(out, x) + F.mse_loss(out, x)
    foreground = ((x - background).abs().mean(dim=1, keepdim=True) > 2 * FOREGROUND_THRESHOLD).float()
    w = 1.0 + weight * foreground
    err = out - x
    return ((err.abs() + err.square()) * w).mean() / w.mean()


def make_vqgan(
    preset: str, codebook_size: int, downsample_factor: int = 16, channels: int = 0, local: bool = False
) -> VQGAN:
    """A fresh VQGAN of ``preset`` (tiny or small) with ``codebook_size`` codes, ``downsample_factor`` x fewer
    tokens per side than pixels, ``channels`` base channels (0: the preset's) and local codes when ``local``
    (see :attr:`VQGANConfig.local`)."""
    configs = {"tiny": VQGANConfig.tiny, "small": VQGANConfig.small}
    if preset not in configs:
        raise ValueError(f"--preset must be one of {sorted(configs)}, got {preset!r}")
    config = configs[preset](n_embed=codebook_size, downsample_factor=downsample_factor)
    if channels:
        config = dataclasses.replace(config, ch=channels, num_groups=math.gcd(config.num_groups, channels))
    return VQGAN(dataclasses.replace(config, local=local))


@torch.no_grad()
def restart_dead_codes(vqgan: VQGAN, usage: torch.Tensor, latents: torch.Tensor) -> int:
    """Move unused codes onto random encoder outputs (N, D); returns how many were moved."""
    dead = torch.nonzero(usage == 0).flatten()
    if dead.numel() == 0 or latents.numel() == 0:
        return 0
    picks = latents[torch.randint(0, latents.shape[0], (dead.numel(),), device=latents.device)]
    vqgan.quantize.embedding.weight[dead] = picks.to(vqgan.quantize.embedding.weight.dtype)
    return int(dead.numel())


@torch.no_grad()
def evaluate(vqgan: VQGAN, images: np.ndarray, device: torch.device, batch: int = 32) -> dict[str, float]:
    """Reconstruction PSNR/SSIM and codebook usage (fraction of codes used, perplexity) on ``images``."""
    from rynnvla_model.metrics import psnr, ssim

    vqgan.eval()
    recons, codes = [], []
    for i in range(0, len(images), batch):
        x = pixels_from_uint8(images[i : i + batch]).to(device)
        out, q = vqgan(x)
        recons.append(uint8_from_pixels(out))
        codes.append(q.codes.flatten().cpu())
    vqgan.train()
    counts = torch.bincount(torch.cat(codes), minlength=vqgan.config.n_embed).double()
    p = counts / counts.sum()
    recon = np.concatenate(recons)
    return {
        "psnr": psnr(recon, images),
        "ssim": ssim(recon, images),
        "code_usage": float((counts > 0).double().mean()),
        "perplexity": float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum())),
    }


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="rynnvla-train-vq", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="LeRobot v3 dataset root")
    p.add_argument("--output", required=True, help="output folder of the VQGAN")
    p.add_argument("--front-key", default="observation.images.front", help="front camera feature")
    p.add_argument("--wrist-key", default="observation.images.wrist", help="wrist camera feature ('' for none)")
    p.add_argument("--image-size", type=int, default=64, help="square side the frames are resized to")
    p.add_argument("--preset", default="small", help="tiny | small")
    p.add_argument("--codebook-size", type=int, default=256, help="number of codes")
    p.add_argument("--downsample", type=int, default=16, help="pixels per token side (small: 8 or 16)")
    p.add_argument("--channels", type=int, default=0, help="base channels of the encoder/decoder (0: the preset's)")
    p.add_argument(
        "--local",
        action="store_true",
        help="an encoder that sees each token's patch alone (1x1 convs, 2x2 downsampling, no attention): a static "
        "patch keeps its code when the arm moves",
    )
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=32, help="images per step")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (cosine to 10%% of it)")
    p.add_argument("--restart-every", type=int, default=100, help="restart codes unused for this many steps (0: off)")
    p.add_argument(
        "--foreground-weight",
        type=float,
        default=0.0,
        help="extra loss weight of pixels that differ from their camera's median background (0: off)",
    )
    p.add_argument("--frame-stride", type=int, default=1, help="use every n-th frame")
    p.add_argument("--val-fraction", type=float, default=0.1, help="episodes held out for validation")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def train_vq(args: argparse.Namespace) -> dict[str, float]:
    """Train and save; returns the validation metrics."""
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    source = LeRobotSource(args.root, SourceKeys(front=args.front_key, wrist=args.wrist_key or None))
    split = split_episodes(source.num_episodes, args.val_fraction, args.seed)
    train, train_cameras = load_frames(source, split.train_episodes, args.image_size, args.frame_stride)
    val, _ = load_frames(source, split.val_episodes or split.train_episodes[:1], args.image_size, args.frame_stride)
    background = None
    if args.foreground_weight:
        background = torch.from_numpy(backgrounds(train, train_cameras)).permute(0, 3, 1, 2).to(device) * 2 - 1
    vqgan = make_vqgan(args.preset, args.codebook_size, args.downsample, args.channels, args.local).to(device).train()
    optimizer = torch.optim.Adam(vqgan.parameters(), lr=args.lr, betas=(0.5, 0.9))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps, eta_min=0.1 * args.lr)
    rng = np.random.default_rng(args.seed)
    usage = torch.zeros(vqgan.config.n_embed, dtype=torch.long, device=device)
    bar = tqdm(range(args.steps), desc="train-vq", unit="step", disable=args.no_progress)
    for step in bar:
        batch = rng.integers(0, len(train), args.batch_size)
        x = pixels_from_uint8(train[batch]).to(device)
        out, q = vqgan(x)
        bg = None if background is None else background[torch.from_numpy(train_cameras[batch]).to(device)]
        recon = reconstruction_loss(out, x, bg, args.foreground_weight)
        loss = recon + q.loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        usage += torch.bincount(q.codes.flatten(), minlength=vqgan.config.n_embed)
        if args.restart_every and (step + 1) % args.restart_every == 0:
            with torch.no_grad():
                z = vqgan.quant_conv(vqgan.encoder(x))
            restart_dead_codes(vqgan, usage, z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))
            usage.zero_()
        bar.set_postfix(recon=f"{float(recon.detach()):.4f}", vq=f"{float(q.loss.detach()):.4f}")
    out_dir = vqgan.cpu().save(args.output)  # before the validation: a failure there keeps the trained weights
    metrics = evaluate(vqgan, val, "cpu") | {"train_images": len(train), "val_images": len(val), "steps": args.steps}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rynnvla-train-vq``."""
    args = build_parser().parse_args(argv)
    try:
        metrics = train_vq(args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"rynnvla-train-vq: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
