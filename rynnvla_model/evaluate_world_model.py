"""``rynnvla-eval-wm``: frame prediction of the world model on held-out episodes of a LeRobot dataset.

For each evaluated step t of an episode the checkpoint predicts the front (and wrist) frame t+H from the frames t
and the world-model action of step t, H being the checkpoint's ``world_model_horizon`` (1, the release: the next
frame), and the prediction is compared with the real frame t+H (both squashed to the model's image size with the
same resize the model's input gets). Two references are scored the same way:

* ``copy_baseline``: frame t itself as the prediction of t+H (a world model worth having beats it);
* ``vq_reconstruction``: frame t+H encoded and decoded by the checkpoint's VQGAN (the best the tokens allow).

Metrics (:mod:`rynnvla_model.metrics`): PSNR and SSIM always, LPIPS with ``--lpips-weights`` (or torchvision's
cached backbone file), FVD with ``--i3d``. FVD compares clips of ``--fvd-frames`` consecutive evaluated steps
(predicted vs real frames t+H), one clip set per view.

The world-model action of step t is the dataset's ``action`` row t+H-1 transformed like a step of the VLA target
(:func:`rynnvla_model.data.samples.world_model_action`): absolute for absolute dimensions, ``a - s_t`` for the
relative ones, which come from the checkpoint's ``robot_io.json`` (``"relative": true`` joints) unless given.
Both are in the dataset's units, the units of the checkpoint's ``norm_stats.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rynnvla_model import metrics
from rynnvla_model.data import samples
from rynnvla_model.data.lerobot_source import Frame, LeRobotSource, SourceKeys
from rynnvla_model.data.samples import SPLIT_FILE, EpisodeSplit, SampleSpec
from rynnvla_model.image_tokenizer import resize

ROBOT_IO_FILE = "robot_io.json"
VIEWS = ("front", "wrist")
REFERENCES = ("model", "copy_baseline", "vq_reconstruction")
DEFAULT_HELD_OUT_FRACTION = 0.1


@dataclass
class EvalConfig:
    """What to evaluate and how (the command-line options of ``rynnvla-eval-wm``)."""

    checkpoint: Path
    dataset: Path
    episodes: list[int] | None = None
    split: Path | None = None
    max_steps: int = 32
    """Evaluated steps per episode (0: all)."""
    stride: int = 1
    """Dataset rows between evaluated steps (each step still predicts the row H ahead)."""
    device: str = "auto"
    dtype: str | None = None
    views: tuple[str, ...] | None = None
    relative_dims: tuple[int, ...] | None = None
    lpips_weights: Path | None = None
    lpips_net: str = "alex"
    i3d: Path | None = None
    fvd_frames: int = 16
    batch_size: int = 1
    reconstruction: bool = True
    samples_dir: Path | None = None
    samples_per_episode: int = 2
    keys: SourceKeys = field(default_factory=SourceKeys)
    progress: bool = True


# ------------------------------------------------------------------------------------------- set-up helpers
def held_out_episodes(
    num_episodes: int, episodes: Sequence[int] | None, split: Path | None, checkpoint: Path | None = None
) -> tuple[list[int], str]:
    """The episodes to evaluate and where they came from: ``--episodes``, ``--split`` (its ``val_episodes``), the
    checkpoint's own ``split.json``, or else the last 10 % of the episodes (at least one)."""
    if episodes and split is not None:
        raise ValueError("give --episodes or --split, not both")
    if episodes:
        chosen, source = sorted({int(e) for e in episodes}), "--episodes"
    else:
        if split is None and checkpoint is not None and (checkpoint / SPLIT_FILE).is_file():
            split = checkpoint / SPLIT_FILE
        if split is not None:
            if not Path(split).is_file():
                raise FileNotFoundError(f"split file not found: {split}")
            chosen, source = sorted(EpisodeSplit.load(split).val_episodes), f"split {split}"
            if not chosen:
                raise ValueError(f"{split} has no val_episodes")
        else:
            n = max(1, round(DEFAULT_HELD_OUT_FRACTION * num_episodes))
            chosen, source = list(range(num_episodes - n, num_episodes)), "last 10% of episodes"
    bad = [e for e in chosen if not 0 <= e < num_episodes]
    if bad:
        raise ValueError(f"episodes {bad} are not in the dataset (it has {num_episodes}: 0..{num_episodes - 1})")
    return chosen, source


def checkpoint_robot_io(checkpoint: Path) -> dict[str, Any] | None:
    """The checkpoint's ``robot_io.json`` as a dict (cameras, joints with ``relative`` flags), or None."""
    path = checkpoint / ROBOT_IO_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("joints", []), list):
        raise ValueError(f"{path}: expected an object with a 'joints' list")
    return data


def resolve_views(cfg: EvalConfig, robot_io: dict[str, Any] | None, dataset_features: Sequence[str]) -> tuple:
    """Views to predict: ``--views``, else the checkpoint's robot_io cameras, else front (+ wrist when the dataset
    has the wrist feature)."""
    if cfg.views is not None:
        views = tuple(cfg.views)
    elif robot_io is not None and "cameras" in robot_io:
        views = tuple(str(c) for c in robot_io["cameras"])
    else:
        views = ("front", "wrist") if cfg.keys.wrist in dataset_features else ("front",)
    if views not in (("front",), ("front", "wrist")):
        raise ValueError(f"views must be ['front'] or ['front', 'wrist'], got {list(views)}")
    return views


def resolve_relative_dims(cfg: EvalConfig, robot_io: dict[str, Any] | None) -> tuple[tuple[int, ...], str]:
    """Relative action dimensions and where they came from."""
    if cfg.relative_dims is not None:
        return tuple(cfg.relative_dims), "--relative-dims"
    if robot_io is not None:
        dims = tuple(i for i, j in enumerate(robot_io.get("joints", [])) if bool(j.get("relative", False)))
        return dims, ROBOT_IO_FILE
    return (), "none (no robot_io.json)"


def world_model_action(
    actions: np.ndarray, states: np.ndarray, row: int, stop: int, relative_dims: Sequence[int], horizon: int = 1
) -> np.ndarray:
    """The world-model action of global ``row``: the VLA target ``horizon`` - 1 steps ahead (training's transform)."""
    spec = SampleSpec(time_horizon=horizon, relative_dims=tuple(relative_dims), world_model_horizon=horizon)
    return samples.world_model_action(actions, states, row, stop, spec)


def step_rows(start: int, stop: int, stride: int, max_steps: int, horizon: int = 1) -> list[int]:
    """Global rows t of an episode [start, stop) that are evaluated (each needs the row t+horizon in the episode)."""
    rows = list(range(start, stop - horizon, stride))
    return rows[:max_steps] if max_steps > 0 else rows


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name} was requested but CUDA is not available")
    return dev


# --------------------------------------------------------------------------------------------- accumulation
@dataclass
class _Pending:
    """One step waiting for its prediction."""

    episode: int
    frame_index: int
    current: dict[str, np.ndarray]
    real_next: dict[str, np.ndarray]
    action: np.ndarray


class _ViewScores:
    """Per-step scores of one view, and its FVD clips (bounded memory: clips become features as they fill)."""

    def __init__(self, lpips: metrics.LPIPS | None, i3d: metrics.I3DFeatures | None, fvd_frames: int) -> None:
        self.lpips, self.i3d, self.fvd_frames = lpips, i3d, fvd_frames
        self.values: dict[str, dict[str, list[float]]] = {r: {"psnr": [], "ssim": [], "lpips": []} for r in REFERENCES}
        self.episode_of: list[int] = []
        self._clip_pred: list[np.ndarray] = []
        self._clip_real: list[np.ndarray] = []
        self.fvd_pred: list[np.ndarray] = []
        self.fvd_real: list[np.ndarray] = []

    def add(self, episode: int, images: dict[str, np.ndarray], real: np.ndarray) -> None:
        """Score one step: ``images`` maps each reference to its (H, W, 3) prediction of ``real``."""
        self.episode_of.append(episode)
        for ref, img in images.items():
            vals = self.values[ref]
            vals["psnr"].append(float(metrics.psnr_per_image(img, real)[0]))
            vals["ssim"].append(float(metrics.ssim_per_image(img, real)[0]))
            if self.lpips is not None:
                vals["lpips"].append(float(self.lpips.per_image(img, real)[0]))
        if self.i3d is not None:
            self._clip_pred.append(images["model"])
            self._clip_real.append(real)
            if len(self._clip_pred) == self.fvd_frames:
                feats = self.i3d(np.stack([np.stack(self._clip_pred), np.stack(self._clip_real)]))
                self.fvd_pred.append(feats[0])
                self.fvd_real.append(feats[1])
                self.end_clip()

    def end_clip(self) -> None:
        """Drop a partial clip (at an episode's end: clips never span episodes)."""
        self._clip_pred, self._clip_real = [], []

    def summary(self) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for ref, vals in self.values.items():
            if not vals["psnr"]:
                continue
            out[ref] = {
                "psnr": float(np.mean(vals["psnr"])),
                "ssim": float(np.mean(vals["ssim"])),
                "lpips": float(np.mean(vals["lpips"])) if vals["lpips"] else None,
            }
        fvd = None
        if len(self.fvd_pred) >= 2:
            fvd = metrics.frechet_distance_from_features(np.stack(self.fvd_pred), np.stack(self.fvd_real))
        out["model"]["fvd"] = fvd
        return out

    def episode_summary(self, episode: int) -> dict[str, dict[str, float]]:
        idx = [i for i, e in enumerate(self.episode_of) if e == episode]
        return {
            ref: {m: float(np.mean([vals[m][i] for i in idx])) for m in ("psnr", "ssim")}
            for ref, vals in self.values.items()
            if vals["psnr"] and idx
        }


# ----------------------------------------------------------------------------------------------- prediction
def predict_batch(policy: Any, batch: Sequence[_Pending], views: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """Predicted next frames {view: image} of each pending step. One step goes through
    :meth:`RynnVLAPolicy.predict_next_frames`; several are generated together (same prompts, one batch)."""
    use_wrist = "wrist" in views
    if len(batch) == 1:
        p = batch[0]
        images = policy.predict_next_frames(p.current["front"], p.current.get("wrist"), p.action).images
        return [dict(zip(views, images, strict=True))]
    from rynnvla_model.inference import predict_next_frames

    proc = policy.processor
    prompts = [
        proc.world_model_prompt_from_images(p.current["front"], p.current["wrist"] if use_wrist else None, p.action)
        for p in batch
    ]
    if len({len(q) for q in prompts}) != 1:
        raise RuntimeError("world-model prompts of one batch differ in length; use --batch-size 1")
    pred = predict_next_frames(policy.model, np.stack(prompts), proc.image_tokenizer.latent_shape, len(views))
    ids = pred.token_ids.cpu().numpy()
    return [dict(zip(views, proc.decode_images(ids[b]), strict=True)) for b in range(len(batch))]


def _save_sample(path: Path, step: _Pending, predicted: dict[str, np.ndarray], views: Sequence[str]) -> None:
    """PNG: one row per view, columns frame t | predicted t+H | real t+H."""
    from PIL import Image

    rows = [np.concatenate([step.current[v], predicted[v], step.real_next[v]], axis=1) for v in views]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


# ----------------------------------------------------------------------------------------------- evaluation
def _build_metric_models(cfg: EvalConfig, device: torch.device) -> tuple[Any, Any, list[str]]:
    """LPIPS and I3D from local files (before the model loads, so a missing file fails fast)."""
    notes = []
    lpips = None
    if cfg.lpips_weights is not None:
        lpips = metrics.LPIPS(cfg.lpips_weights, net=cfg.lpips_net, device=device)
    else:
        notes.append("lpips: not computed (pass --lpips-weights)")
    i3d = metrics.I3DFeatures(cfg.i3d, device=device) if cfg.i3d is not None else None
    if i3d is None:
        notes.append("fvd: not computed (pass --i3d)")
    return lpips, i3d, notes


def evaluate_world_model(cfg: EvalConfig, policy: Any = None) -> dict[str, Any]:
    """Run the evaluation and return the result dict (see the module docstring); ``policy`` may be preloaded."""
    from tqdm import tqdm

    if cfg.stride < 1 or cfg.max_steps < 0 or cfg.batch_size < 1 or cfg.fvd_frames < 1:
        raise ValueError("stride, batch_size and fvd_frames must be >= 1 and max_steps >= 0")
    checkpoint = Path(cfg.checkpoint)
    if not checkpoint.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {checkpoint}")
    device = _device(cfg.device)
    lpips, i3d, notes = _build_metric_models(cfg, device)
    robot_io = checkpoint_robot_io(checkpoint)

    probe = LeRobotSource(cfg.dataset, SourceKeys(None, None, cfg.keys.state, cfg.keys.action))
    views = resolve_views(cfg, robot_io, list(probe.features))
    keys = SourceKeys(cfg.keys.front, cfg.keys.wrist if "wrist" in views else None, cfg.keys.state, cfg.keys.action)
    source = LeRobotSource(cfg.dataset, keys)
    episodes, episode_source = held_out_episodes(source.num_episodes, cfg.episodes, cfg.split, checkpoint)
    relative_dims, relative_source = resolve_relative_dims(cfg, robot_io)

    if policy is None:
        from rynnvla_model.policy import RynnVLAPolicy

        dtype = getattr(torch, cfg.dtype) if cfg.dtype else None
        policy = RynnVLAPolicy.from_pretrained(checkpoint, device=device, dtype=dtype)
    actions, states = source.actions(), source.states()
    if actions.shape[1] != policy.action_dim:
        raise ValueError(f"dataset actions have {actions.shape[1]} dimensions, the checkpoint {policy.action_dim}")
    if relative_dims and (states.shape[1] != actions.shape[1] or max(relative_dims) >= actions.shape[1]):
        raise ValueError(
            f"relative dims {list(relative_dims)} need state and action of equal width > max dim "
            f"(state {states.shape[1]}, action {actions.shape[1]})"
        )
    size = policy.image_size
    tokenizer = policy.processor.image_tokenizer

    scores = {v: _ViewScores(lpips, i3d, cfg.fvd_frames) for v in views}
    horizon = int(getattr(policy.model.config, "world_model_horizon", 1))
    plan = {e: step_rows(*source.episode_range(e), cfg.stride, cfg.max_steps, horizon) for e in episodes}
    total = sum(len(rows) for rows in plan.values())
    if total == 0:
        raise ValueError(f"episodes {episodes} have no step with a next frame to evaluate")
    predict_s: list[float] = []
    per_episode = []
    bar = tqdm(total=total, desc="world model", unit="step", disable=not cfg.progress)

    def flush(batch: list[_Pending], saved: dict[int, int]) -> None:
        if not batch:
            return
        t0 = time.perf_counter()
        predicted = predict_batch(policy, batch, views)
        predict_s.append((time.perf_counter() - t0) / len(batch))
        for step, pred in zip(batch, predicted, strict=True):
            recon = {}
            if cfg.reconstruction:
                codes = tokenizer.encode([step.real_next[v] for v in views])
                recon = dict(zip(views, tokenizer.decode_codes(codes), strict=True))
            for v in views:
                images = {"model": pred[v], "copy_baseline": step.current[v]}
                if recon:
                    images["vq_reconstruction"] = recon[v]
                scores[v].add(step.episode, images, step.real_next[v])
            if cfg.samples_dir is not None and saved.get(step.episode, 0) < cfg.samples_per_episode:
                saved[step.episode] = saved.get(step.episode, 0) + 1
                name = f"ep{step.episode:04d}_t{step.frame_index:05d}.png"
                _save_sample(Path(cfg.samples_dir) / name, step, pred, views)
        bar.update(len(batch))
        batch.clear()

    saved: dict[int, int] = {}
    for episode in episodes:
        rows = set(plan[episode])
        if not rows:
            continue
        stop = source.episode_range(episode)[1]
        last = max(rows) + horizon
        batch: list[_Pending] = []
        waiting: dict[int, tuple[Frame, dict[str, np.ndarray]]] = {}  # evaluated rows whose frame t+H is ahead
        for frame in source.episode_frames(episode):
            if frame.index > last:
                break
            if frame.index not in rows and frame.index - horizon not in waiting:
                continue
            images = {v: resize(getattr(frame, v), size) for v in views}
            if frame.index - horizon in waiting:
                cur_frame, cur_images = waiting.pop(frame.index - horizon)
                action = world_model_action(actions, states, cur_frame.index, stop, relative_dims, horizon)
                batch.append(_Pending(episode, cur_frame.frame_index, cur_images, images, action))
                if len(batch) == cfg.batch_size:
                    flush(batch, saved)
            if frame.index in rows:
                waiting[frame.index] = (frame, images)
        flush(batch, saved)
        for s in scores.values():
            s.end_clip()
        per_episode.append(
            {"episode": episode, "steps": len(rows)} | {v: scores[v].episode_summary(episode) for v in views}
        )
    bar.close()

    view_metrics = {v: scores[v].summary() for v in views}
    n_clips = len(scores[views[0]].fvd_pred)
    if i3d is not None and n_clips < 2:
        notes.append(f"fvd: needs at least 2 clips of {cfg.fvd_frames} steps, got {n_clips}")
    return {
        "checkpoint": str(checkpoint),
        "dataset": str(cfg.dataset),
        "episodes": episodes,
        "episode_source": episode_source,
        "views": list(views),
        "image_size": list(size),
        "action": {"relative_dims": list(relative_dims), "relative_dims_from": relative_source},
        "settings": {
            "max_steps_per_episode": cfg.max_steps,
            "stride": cfg.stride,
            "world_model_horizon": horizon,
            "fvd_frames": cfg.fvd_frames,
            "batch_size": cfg.batch_size,
            "device": str(device),
            "dtype": str(next(policy.model.parameters()).dtype).removeprefix("torch."),
            "lpips": None if lpips is None else {"net": cfg.lpips_net, "backbone": str(lpips.backbone_path)},
            "i3d": None if i3d is None else str(i3d.path),
        },
        "counts": {"episodes": len(episodes), "steps": len(scores[views[0]].episode_of), "fvd_clips": n_clips},
        "metrics": view_metrics,
        "per_episode": per_episode,
        "timing": {"predict_ms_per_step": float(np.mean(predict_s) * 1e3) if predict_s else None},
        "definitions": {
            "psnr": f"dB, data range 1 on [0,1] RGB, per image then mean; identical images = {metrics.PSNR_MAX_DB}",
            "ssim": "Gaussian window 11x11 sigma 1.5, K1 0.01, K2 0.03, data range 1, mean over pixels, channels, "
            "images",
            "lpips": f"{cfg.lpips_net} backbone, torchmetrics linear heads, inputs in [-1,1]; lower is better",
            "fvd": f"Frechet distance of I3D features of {cfg.fvd_frames}-step clips, frames resized to 224x224",
            "copy_baseline": f"frame t used as the prediction of frame t+{horizon}",
            "vq_reconstruction": f"frame t+{horizon} through the checkpoint's VQGAN (encode + decode)",
        },
        "notes": notes,
    }


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of the per-view metrics."""
    refs = [r for r in REFERENCES if any(r in m for m in result["metrics"].values())]
    head = f"{'view':<6} {'metric':<6} " + " ".join(f"{r:>18}" for r in refs)
    lines = [head, "-" * len(head)]
    for view, by_ref in result["metrics"].items():
        for name in ("psnr", "ssim", "lpips", "fvd"):
            cells = []
            for r in refs:
                value = by_ref.get(r, {}).get(name)
                cells.append(f"{value:>18.4f}" if value is not None else f"{'-':>18}")
            lines.append(f"{view:<6} {name:<6} " + " ".join(cells))
    c = result["counts"]
    lines.append(f"{c['episodes']} episodes, {c['steps']} steps, {c['fvd_clips']} FVD clips per view")
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rynnvla-eval-wm",
        description="Next-frame prediction of a checkpoint's world model on held-out episodes of a LeRobot dataset: "
        "PSNR, SSIM, LPIPS, FVD, with the copy-the-current-frame baseline and the VQGAN reconstruction.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint directory (save_pretrained format)")
    p.add_argument("dataset", type=Path, help="LeRobot v3 dataset root")
    held = p.add_mutually_exclusive_group()
    held.add_argument("--episodes", type=int, nargs="+", help="episode indices to evaluate")
    held.add_argument(
        "--split", type=Path, help='split JSON {"train_episodes": [...], "val_episodes": [...]}; evaluates val'
    )
    p.add_argument("--max-steps", type=int, default=32, help="evaluated steps per episode, 0 = all (default 32)")
    p.add_argument("--stride", type=int, default=1, help="rows between evaluated steps (default 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None, help="default: bf16 on CUDA")
    p.add_argument("--batch-size", type=int, default=1, help="steps generated together (default 1)")
    p.add_argument("--views", choices=["front", "front,wrist"], default=None, help="default: robot_io.json cameras")
    p.add_argument(
        "--relative-dims", type=int, nargs="*", default=None, help="action dims as deltas (default: robot_io.json)"
    )
    p.add_argument("--lpips-weights", type=Path, default=None, help="torchvision backbone file, e.g. alexnet-owt-*.pth")
    p.add_argument("--lpips-net", choices=sorted(metrics.LPIPS_BACKBONE_FILES), default="alex")
    p.add_argument("--i3d", type=Path, default=None, help="I3D TorchScript file for FVD (e.g. i3d_torchscript.pt)")
    p.add_argument("--fvd-frames", type=int, default=16, help="steps per FVD clip (default 16)")
    p.add_argument("--no-reconstruction", action="store_true", help="skip the VQGAN reconstruction reference")
    p.add_argument("--samples-dir", type=Path, default=None, help="write side-by-side PNGs here")
    p.add_argument("--samples-per-episode", type=int, default=2)
    p.add_argument("--front-key", default="observation.images.front")
    p.add_argument("--wrist-key", default="observation.images.wrist")
    p.add_argument("--state-key", default="observation.state")
    p.add_argument("--action-key", default="action")
    p.add_argument("--out", type=Path, default=Path("eval_world_model.json"), help="result JSON")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    return EvalConfig(
        checkpoint=args.checkpoint,
        dataset=args.dataset,
        episodes=args.episodes,
        split=args.split,
        max_steps=args.max_steps,
        stride=args.stride,
        device=args.device,
        dtype=args.dtype,
        views=tuple(args.views.split(",")) if args.views else None,
        relative_dims=None if args.relative_dims is None else tuple(args.relative_dims),
        lpips_weights=args.lpips_weights,
        lpips_net=args.lpips_net,
        i3d=args.i3d,
        fvd_frames=args.fvd_frames,
        batch_size=args.batch_size,
        reconstruction=not args.no_reconstruction,
        samples_dir=args.samples_dir,
        samples_per_episode=args.samples_per_episode,
        keys=SourceKeys(args.front_key, args.wrist_key, args.state_key, args.action_key),
        progress=not args.no_progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = evaluate_world_model(config_from_args(args))
    except (FileNotFoundError, ValueError, KeyError, IndexError) as exc:
        print(f"rynnvla-eval-wm: error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(format_table(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
