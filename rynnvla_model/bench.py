"""Speed benchmark of the model part: ``rynnvla-bench model --config tiny|small|official_7b --device cpu|cuda``.

Measures, with warm-up and repetitions, on random weights (speed does not depend on them) and synthetic token
sequences of realistic length (a 256-px image is a 16x16 latent grid = 276 tokens; the default VLA prompt has M=2
history steps of front + wrist images = 4 images, a state block and ~24 text tokens):

* continuous chunk latency (one prompt forward + action head),
* discrete chunk latency, sequential (about K*A steps) and parallel (1 + A steps),
* world-model latency for the next front + wrist frames (and per frame),
* peak memory: CUDA max allocated, or the process's peak RSS on the CPU.

Prints a table and writes JSON. The synthetic sequence builders are also used by the tests.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.models.chameleon.modeling_chameleon import ChameleonRotaryEmbedding

from rynnvla_model.config import RynnVLAConfig
from rynnvla_model.inference import predict_chunk, predict_next_frames
from rynnvla_model.modeling import IGNORE_INDEX, RynnVLAForActionWorldModel, default_dtype, empty_model
from rynnvla_model.vocab import NUM_BINS, VocabLayout

CONFIGS = ("tiny", "small", "official_7b")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# ---------------------------------------------------------------------------------------------------- synthetic ids
def text_ids(layout: VocabLayout, n: int, rng: np.random.Generator) -> list[int]:
    """``n`` ids that play no special role (bytes in a compact layout; plain BPE ids in the official one)."""
    if layout.text_byte_first is not None:
        return [int(x) for x in layout.text_byte_first + rng.integers(0, 256, n)]
    return [int(x) for x in rng.integers(20000, 30000, n)]


def image_block_ids(layout: VocabLayout, codes: np.ndarray) -> list[int]:
    """``[image_start, grid(h), grid(w), rows of codes + row_end, image_end]`` of an (h, w) code grid."""
    h, w = codes.shape
    out = [layout.image_start, layout.grid_token(h), layout.grid_token(w)]
    for row in codes:
        out += [layout.image_code_ids[int(c)] for c in row] + [layout.row_end]
    return [*out, layout.image_end]


def random_codes(layout: VocabLayout, latent: int, rng: np.random.Generator) -> np.ndarray:
    """A random (latent, latent) VQ code grid."""
    return rng.integers(0, layout.codebook_size, (latent, latent))


def action_block_ids(layout: VocabLayout, bins: np.ndarray) -> list[int]:
    """``[action_start, value ids, action_end]`` of 0-based bin indices (0..255)."""
    return [layout.action_start, *(int(layout.action_value_first + b) for b in bins), layout.action_end]


def synthetic_vla_prompt(
    layout: VocabLayout,
    rng: np.random.Generator,
    n_text: int = 24,
    state_dim: int = 8,
    n_images: int = 4,
    latent: int = 16,
    images: list[np.ndarray] | None = None,
) -> np.ndarray:
    """``[BOS] text [state block] image blocks [SEP]`` with random content."""
    ids = [layout.bos, *text_ids(layout, n_text, rng)]
    if state_dim:
        ids += [layout.state_start, *(int(layout.state_value_first + b) for b in rng.integers(0, NUM_BINS, state_dim))]
        ids.append(layout.state_end)
    for codes in images if images is not None else [random_codes(layout, latent, rng) for _ in range(n_images)]:
        ids += image_block_ids(layout, codes)
    return np.asarray([*ids, layout.turn_sep], dtype=np.int64)


def synthetic_vla_sample(
    layout: VocabLayout, prompt: np.ndarray, action_bins: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, labels)``: the prompt then K action blocks of (K, A) bin indices and [SEP], answer labelled."""
    answer = [i for row in np.asarray(action_bins) for i in action_block_ids(layout, row)] + [layout.turn_sep]
    ids = np.concatenate([prompt, np.asarray(answer, dtype=np.int64)])
    labels = np.concatenate([np.full(prompt.shape, IGNORE_INDEX, dtype=np.int64), np.asarray(answer)])
    return ids, labels


def synthetic_world_model_sample(
    layout: VocabLayout,
    rng: np.random.Generator,
    action_bins: np.ndarray,
    images: list[np.ndarray],
    next_images: list[np.ndarray],
    n_text: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, labels)``: ``[BOS] text images action [SEP]`` then the next images and [SEP], answer labelled."""
    prompt = [layout.bos, *text_ids(layout, n_text, rng)]
    for codes in images:
        prompt += image_block_ids(layout, codes)
    prompt += [*action_block_ids(layout, np.asarray(action_bins)), layout.turn_sep]
    answer = [i for codes in next_images for i in image_block_ids(layout, codes)] + [layout.turn_sep]
    ids = np.asarray(prompt + answer, dtype=np.int64)
    labels = np.asarray([IGNORE_INDEX] * len(prompt) + answer, dtype=np.int64)
    return ids, labels


# ---------------------------------------------------------------------------------------------------- model
def bench_config(name: str, action_dim: int, time_horizon: int) -> RynnVLAConfig:
    """A config by preset name (official_7b uses an identity-like image-code table: speed only)."""
    if name == "tiny":
        return RynnVLAConfig.tiny(action_dim, time_horizon, codebook_size=8192, hidden_size=64)
    if name == "small":
        return RynnVLAConfig.small(action_dim, time_horizon)
    if name == "official_7b":
        # The real code -> id table comes from the tokenizer; any 8192 distinct ids give the same speed.
        layout = VocabLayout.official(np.arange(4, 4 + 8192))
        return RynnVLAConfig.official_7b(action_dim, time_horizon, layout)
    raise ValueError(f"unknown config {name!r}; choose from {CONFIGS}")


def random_model(config: RynnVLAConfig, device: torch.device, dtype: torch.dtype) -> RynnVLAForActionWorldModel:
    """A randomly initialised model created directly on ``device`` in ``dtype`` (no fp32 copy on the CPU)."""
    model = empty_model(config, device, dtype).to_empty(device=device).to(dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1 or name.endswith(("norm.weight", "norm.bias")):
                param.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                param.normal_(0.0, 0.02, generator=gen)
    model.model.rotary_emb = ChameleonRotaryEmbedding(config=config).to(device)
    return model.eval()


# ---------------------------------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, warmup: int, reps: int) -> dict[str, float]:
    """Latency statistics (ms) of ``fn`` over ``reps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {
        "mean_ms": statistics.fmean(times),
        "p50_ms": statistics.median(times),
        "p90_ms": times[min(len(times) - 1, round(0.9 * (len(times) - 1)))],
        "min_ms": times[0],
        "reps": reps,
    }


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """Peak memory in MiB and what it measures."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_peak_rss"


def run_benchmark(
    config_name: str = "tiny",
    device: str = "cpu",
    dtype: str | None = None,
    action_dim: int = 7,
    time_horizon: int = 5,
    latent: int = 16,
    history: int = 2,
    wrist: bool = True,
    state_dim: int = 8,
    batch: int = 1,
    warmup: int = 1,
    reps: int = 5,
    world_model: bool = True,
) -> dict[str, Any]:
    """Run every measurement and return the results as a JSON-ready dict."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but CUDA is not available")
    torch_dtype = DTYPES[dtype] if dtype else default_dtype(dev)
    config = bench_config(config_name, action_dim, time_horizon)
    model = random_model(config, dev, torch_dtype)
    layout = model.layout
    rng = np.random.default_rng(0)
    views = 2 if wrist else 1
    prompts = [
        synthetic_vla_prompt(layout, rng, state_dim=state_dim, n_images=history * views, latent=latent)
        for _ in range(batch)
    ]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    results: dict[str, Any] = {}
    results["continuous"] = time_call(lambda: predict_chunk(model, prompts, "continuous"), dev, warmup, reps)
    results["discrete_sequential"] = time_call(
        lambda: predict_chunk(model, prompts, "discrete", parallel=False), dev, warmup, reps
    )
    results["discrete_parallel"] = time_call(
        lambda: predict_chunk(model, prompts, "discrete", parallel=True), dev, warmup, reps
    )
    for key, parallel in (("discrete_sequential", False), ("discrete_parallel", True)):
        results[key]["forward_passes"] = predict_chunk(model, prompts[:1], "discrete", parallel=parallel).forward_passes
    for key in results:
        results[key]["actions_per_s"] = 1e3 * batch * time_horizon / results[key]["mean_ms"]
    wm_prompt_len = 0
    if world_model:
        wm_prompts = []
        for _ in range(batch):
            images = [random_codes(layout, latent, rng) for _ in range(views)]
            ids, labels = synthetic_world_model_sample(
                layout, rng, rng.integers(0, NUM_BINS, action_dim), images, images
            )
            wm_prompts.append(ids[labels == IGNORE_INDEX])
        wm_prompt_len = len(wm_prompts[0])
        wm = time_call(lambda: predict_next_frames(model, wm_prompts, (latent, latent), views), dev, warmup, reps)
        wm["per_frame_ms"] = wm["mean_ms"] / views
        wm["frames"] = views
        results["world_model"] = wm
    peak, peak_kind = peak_memory_mb(dev)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "config": config_name,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "dtype": str(torch_dtype).replace("torch.", ""),
        "attn_implementation": config._attn_implementation,
        "parameters": n_params,
        "vocab_size": config.vocab_size,
        "action_dim": action_dim,
        "time_horizon": time_horizon,
        "batch": batch,
        "image_latent": latent,
        "images_in_prompt": history * views,
        "vla_prompt_tokens": len(prompts[0]),
        "world_model_prompt_tokens": wm_prompt_len,
        "warmup": warmup,
        "results": results,
        "peak_memory_mb": peak,
        "peak_memory_kind": peak_kind,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of the results."""
    lines = [
        f"config={report['config']} device={report['device_name']} dtype={report['dtype']} "
        f"params={report['parameters'] / 1e6:.2f}M prompt={report['vla_prompt_tokens']} tokens "
        f"K={report['time_horizon']} A={report['action_dim']} batch={report['batch']}",
        f"{'measurement':<22}{'mean ms':>10}{'p50 ms':>10}{'p90 ms':>10}{'min ms':>10}{'passes':>8}",
    ]
    for name, r in report["results"].items():
        lines.append(
            f"{name:<22}{r['mean_ms']:>10.2f}{r['p50_ms']:>10.2f}{r['p90_ms']:>10.2f}{r['min_ms']:>10.2f}"
            f"{r.get('forward_passes', ''):>8}"
        )
    if "world_model" in report["results"]:
        lines.append(f"world model per frame: {report['results']['world_model']['per_frame_ms']:.2f} ms")
    lines.append(f"peak memory: {report['peak_memory_mb']:.1f} MiB ({report['peak_memory_kind']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``rynnvla-bench``."""
    parser = argparse.ArgumentParser(prog="rynnvla-bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("model", help="latency and memory of the model on random weights")
    p.add_argument("--config", choices=CONFIGS, default="tiny")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--action-dim", type=int, default=7)
    p.add_argument("--time-horizon", type=int, default=5)
    p.add_argument("--image-latent", type=int, default=16, help="latent grid side (16 = 256-px images)")
    p.add_argument("--history", type=int, default=2, help="history steps M in the VLA prompt")
    p.add_argument("--no-wrist", action="store_true", help="front camera only")
    p.add_argument("--state-dim", type=int, default=8)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--skip-world-model", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.warmup < 0 or args.batch < 1 or args.history < 1:
        parser.error("--reps and --batch and --history must be >= 1, --warmup >= 0")
    try:
        report = run_benchmark(
            config_name=args.config,
            device=args.device,
            dtype=args.dtype,
            action_dim=args.action_dim,
            time_horizon=args.time_horizon,
            latent=args.image_latent,
            history=args.history,
            wrist=not args.no_wrist,
            state_dim=args.state_dim,
            batch=args.batch,
            warmup=args.warmup,
            reps=args.reps,
            world_model=not args.skip_world_model,
        )
    except (ValueError, RuntimeError) as exc:
        print(f"rynnvla-bench: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
