"""``rynnvla-train``: train RynnVLA (VLA + world model) on a LeRobot dataset, on one process or many (torchrun).

Run directory (``train.output_dir``)::

    run_config.yaml      the resolved configuration
    split.json           training / validation episodes
    norm_stats.json      state and action-target statistics of the training episodes (copied into every model)
    code_cache/          image codes of every used frame (data.cache)
    checkpoints/         resumable checkpoints (see train_state), ``latest`` names the newest
    final/               the deployable model of the last step (config, weights, processor, robot_io.json, split)
    log.jsonl            one line per optimizer step (loss parts, lr, throughput) and per validation
    tensorboard/         the same as TensorBoard scalars
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rynnvla_model.action_tokenizer import NORM_STATS_FILE, FeatureStats, NormStats
from rynnvla_model.checkpoint import from_pretrained, load_official_checkpoint, save_pretrained
from rynnvla_model.config import RynnVLAConfig
from rynnvla_model.data.lerobot_source import LeRobotSource, SourceKeys
from rynnvla_model.data.samples import SPLIT_FILE, EpisodeSplit, SampleSpec, sample_refs, split_episodes, target_arrays
from rynnvla_model.modeling import RynnVLAForActionWorldModel
from rynnvla_model.processor import RynnVLAProcessor, processor_for_compact
from rynnvla_model.training import distributed as dist_utils
from rynnvla_model.training.config import RunConfig, parse_run_config
from rynnvla_model.training.distributed import DistInfo
from rynnvla_model.training.token_data import BatchPlan, CachedCodes, Collator, LiveCodes, TokenDataset
from rynnvla_model.training.train_state import latest_checkpoint, load_checkpoint, save_checkpoint, write_json
from rynnvla_model.training.validation import mean_baseline_l1, validate, world_model_image_metrics
from rynnvla_model.vqgan import load_vqgan

logger = logging.getLogger("rynnvla_model.train")
LOG_FILE = "log.jsonl"
FINAL_DIR = "final"
ROBOT_IO_FILE = "robot_io.json"


# ----------------------------------------------------------------------------------------------------- set-up
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def micro_batch_seed(seed: int, step: int, micro_batch: int) -> int:
    """The torch seed of global micro-batch ``micro_batch`` of optimizer step ``step``."""
    return (seed * 1_000_003 + step * 10_007 + micro_batch) % (2**63)


def spec_of(cfg: RunConfig) -> SampleSpec:
    """The :class:`SampleSpec` of the data section."""
    d = cfg.data
    return SampleSpec(
        history=d.history,
        history_stride=d.history_stride,
        time_horizon=d.time_horizon,
        use_wrist=d.use_wrist and bool(d.wrist_key),
        use_state=d.use_state,
        relative_dims=tuple(d.relative_dims),
        world_model_ratio=d.world_model_ratio,
        world_model_horizon=d.world_model_horizon,
    )


def robot_io_path(cfg: RunConfig) -> Path:
    """The robot_io.json written beside every checkpoint: ``model.robot_io``, else the dataset's."""
    return Path(cfg.model.robot_io or Path(cfg.data.root) / ROBOT_IO_FILE)


def deployed_robot_io(cfg: RunConfig) -> dict[str, Any] | None:
    """The robot I/O mapping to write beside each checkpoint (None without a robot_io.json): the file's, with
    ``state`` set to ``data.use_state``. ValueError when its relative joints are not ``data.relative_dims`` (the
    deployed model would turn its actions into targets differently from how it learned them)."""
    path = robot_io_path(cfg)
    if not path.is_file():
        return None
    mapping = json.loads(path.read_text(encoding="utf-8"))
    relative = [i for i, j in enumerate(mapping.get("joints", [])) if j.get("relative", False)]
    if relative != sorted(cfg.data.relative_dims):
        raise ValueError(
            f"{path} has relative joints {relative} but data.relative_dims is {sorted(cfg.data.relative_dims)}; "
            "make them agree (or give another model.robot_io)"
        )
    return {**mapping, "state": cfg.data.use_state}


def training_stats(source: LeRobotSource, episodes: list[int], spec: SampleSpec) -> NormStats:
    """Statistics of the states and of the chunk targets (after the relative-dims transform) of ``episodes``."""
    ranges = [source.episode_range(e) for e in episodes]
    states, actions = source.states(), source.actions()
    if spec.relative_dims and (max(spec.relative_dims) >= min(states.shape[1], actions.shape[1])):
        raise ValueError(f"relative_dims {spec.relative_dims} exceed the state/action width")
    rows = np.concatenate([np.arange(a, b) for a, b in ranges])
    return NormStats(
        {
            "state": FeatureStats.compute(states[rows]),
            "action": FeatureStats.compute(target_arrays(actions, states, ranges, spec)),
        }
    )


def with_norm_stats(processor: RynnVLAProcessor, stats: NormStats, use_state: bool) -> RynnVLAProcessor:
    """The same tokenizers with new normalisation statistics."""
    return RynnVLAProcessor(
        processor.layout,
        processor.text_tokenizer,
        processor.image_tokenizer,
        stats,
        state_key="state" if use_state else None,
        vla_template=processor.builder.vla_template,
        world_model_text=processor.builder.world_model_text,
    )


def build_model_and_processor(
    cfg: RunConfig, stats: NormStats, action_dim: int
) -> tuple[RynnVLAForActionWorldModel, RynnVLAProcessor]:
    """The starting model (fp32, CPU) and its processor with the training statistics."""
    m, d = cfg.model, cfg.data
    state_key = "state" if d.use_state else None
    if m.init == "scratch":
        if not m.vqgan:
            raise ValueError("model.init=scratch needs model.vqgan (a VQGAN directory, e.g. from rynnvla-train-vq)")
        vqgan = load_vqgan(m.vqgan)
        processor = processor_for_compact(vqgan, stats, image_size=d.image_size, state_key=state_key)
        presets = {"tiny": RynnVLAConfig.tiny, "small": RynnVLAConfig.small}
        if m.preset not in presets:
            raise ValueError(f"model.preset must be one of {sorted(presets)}, got {m.preset!r}")
        config = presets[m.preset](
            action_dim=action_dim,
            time_horizon=d.time_horizon,
            codebook_size=vqgan.config.n_embed,
            **m.overrides,
        )
        model = RynnVLAForActionWorldModel(config)
    elif m.init == "official":
        model, processor = load_official_checkpoint(
            m.official_checkpoint,
            m.official_tokenizer,
            stats,
            action_dim=action_dim,
            time_horizon=d.time_horizon,
            dtype=torch.float32,
            image_size=d.image_size,
        )
        processor = with_norm_stats(processor, stats, d.use_state)
    else:
        model, processor = from_pretrained(m.init, dtype=torch.float32)
        processor = with_norm_stats(processor, stats, d.use_state)
    model.config.world_model_horizon = d.world_model_horizon  # saved with the model: what its frames predict
    if model.action_dim != action_dim or model.time_horizon != d.time_horizon:
        raise ValueError(
            f"the model predicts {model.time_horizon} x {model.action_dim} actions, the data gives "
            f"{d.time_horizon} x {action_dim} (data.time_horizon and the dataset's action width)"
        )
    return model.float().train(), processor


def optimizer_for(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms, biases or embeddings)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "embed" in name else decay).append(p)
    o = cfg.optim
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)


def lr_lambda(cfg: RunConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate: linear warm-up, then cosine to ``min_lr`` (or constant)."""
    o = cfg.optim
    floor = o.min_lr / o.lr if o.lr > 0 else 0.0

    def f(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        span = max(1, total_steps - o.warmup_steps)
        progress = min(1.0, (step - o.warmup_steps) / span)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    if o.schedule not in ("cosine", "constant"):
        raise ValueError(f"optim.schedule must be cosine or constant, got {o.schedule!r}")
    return f


def _use_bf16(cfg: RunConfig, device: torch.device) -> bool:
    p = cfg.train.precision
    if p not in ("auto", "fp32", "bf16"):
        raise ValueError(f"train.precision must be auto, fp32 or bf16, got {p!r}")
    return p == "bf16" or (p == "auto" and device.type == "cuda")


def _loader(dataset: TokenDataset, batches: list[list[int]], collate: Collator, workers: int) -> Any:
    """A DataLoader over fixed micro-batches (a list of index lists is a valid batch sampler)."""
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=workers)


# ------------------------------------------------------------------------------------------------------- run
class Trainer:
    """One training run (one per process under torchrun)."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.info: DistInfo = dist_utils.init_distributed(cfg.train.device)
        self.out = Path(cfg.train.output_dir)
        self.bf16 = _use_bf16(cfg, self.info.device)
        d = cfg.data
        if not d.root:
            raise ValueError("data.root is empty: give the LeRobot dataset to train on (--data.root PATH)")
        keys = SourceKeys(front=d.front_key, wrist=d.wrist_key or None, state=d.state_key, action=d.action_key)
        self.source = LeRobotSource(d.root, keys)
        self.spec = spec_of(cfg)
        self.robot_io = deployed_robot_io(cfg)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.info.is_main:
            cfg.save(self.out)
        self.split = self._split()
        self.stats = self._stats()
        seed_everything(cfg.train.seed)
        action_dim = self.source.actions().shape[1]
        model, self.processor = build_model_and_processor(cfg, self.stats, action_dim)
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        model.to(self.info.device)
        self.codes = self._codes()
        self.train_set = self._dataset(self.split.train_episodes, cfg.data.split_seed)
        self.val_set = self._dataset(self.split.val_episodes, cfg.data.split_seed + 1)
        t = cfg.train
        self.plan = BatchPlan(len(self.train_set), t.micro_batch_size, t.grad_accum, self.info.world_size, t.seed)
        self.total_steps = math.ceil(t.epochs * self.plan.steps_per_epoch) if t.epochs > 0 else t.steps
        self.collate = Collator(self.processor.layout.pad, cfg.data.max_seq_len)
        self.model = dist_utils.wrap_model(model, self.info, t.strategy, self.bf16)
        self.optimizer = optimizer_for(self.model, cfg)  # after wrapping: FSDP replaces the parameters
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, self.total_steps))
        self.step = self._resume()
        # constant over the run: the mean training target (from the statistics) and its L1 on the held-out samples
        self.mean_baseline = mean_baseline_l1(self.val_set, self.stats["action"].mean)

    # ---------------------------------------------------------------- set-up parts
    def _split(self) -> EpisodeSplit:
        path = self.out / SPLIT_FILE
        if path.is_file():
            split = EpisodeSplit.load(path)
        else:
            split = split_episodes(self.source.num_episodes, self.cfg.data.val_fraction, self.cfg.data.split_seed)
            if self.info.is_main:
                split.save(path)
        dist_utils.barrier(self.info)
        return split

    def _stats(self) -> NormStats:
        path = self.out / NORM_STATS_FILE
        if path.is_file():
            return NormStats.load(path)
        stats = training_stats(self.source, self.split.train_episodes, self.spec)
        if self.info.is_main:
            stats.save(path)
        dist_utils.barrier(self.info)
        return stats

    def _codes(self) -> CachedCodes | LiveCodes:
        if not self.cfg.data.cache:
            return LiveCodes(self.source, self.processor)
        cams = [self.source.keys.front] + ([self.source.keys.wrist] if self.spec.use_wrist else [])
        episodes = self.split.train_episodes + self.split.val_episodes

        def build(progress: bool) -> CachedCodes:
            return CachedCodes(self.source, self.processor, cams, episodes, self.out / "code_cache", progress=progress)

        if self.info.is_main:
            codes = build(self.cfg.train.progress)
        dist_utils.barrier(self.info)
        if not self.info.is_main:
            codes = build(False)
        return codes

    def _dataset(self, episodes: list[int], seed: int) -> TokenDataset:
        refs = sample_refs([self.source.episode_range(e) for e in episodes], self.spec, seed)
        return TokenDataset(refs, self.source, self.processor, self.codes, self.spec)

    def _resume(self) -> int:
        r = self.cfg.train.resume
        if r == "never":
            return 0
        path = latest_checkpoint(self.out) if r == "auto" else Path(r)
        if path is None:
            return 0
        step = load_checkpoint(path, self.model, self.optimizer, self.scheduler, self.info)
        if self.info.is_main:
            logger.info("resumed from %s at step %d", path, step)
        return step

    # ---------------------------------------------------------------- helpers
    def autocast(self) -> Any:
        """bf16 autocast on GPU when enabled (FSDP does its own casting)."""
        if self.bf16 and not (self.info.distributed and self.cfg.train.strategy == "fsdp"):
            return torch.autocast(self.info.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def export(self, state: dict[str, torch.Tensor], directory: Path) -> None:
        """Write a deployable model (config, weights, processor, robot_io.json, split) into ``directory``."""
        model = dist_utils.unwrap(self.model)
        save_pretrained(model, self.processor, directory, state_dict=state)
        self.split.save(directory / SPLIT_FILE)
        if self.robot_io is not None:
            write_json(directory / ROBOT_IO_FILE, self.robot_io)

    def _log(self, record: dict[str, Any], writer: Any) -> None:
        """Append ``record`` to log.jsonl and, when a writer is given, to TensorBoard (main rank only)."""
        if not self.info.is_main:
            return
        with (self.out / LOG_FILE).open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if writer is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    writer.add_scalar(k, v, record["step"])

    def evaluate(self) -> dict[str, float]:
        """Validation metrics on the held-out episodes. Every rank evaluates the same samples (with FSDP every
        rank must run the same forwards; with DDP the unwrapped module runs without collectives)."""
        if len(self.val_set) == 0:
            return {}
        n, mb = len(self.val_set), self.cfg.train.micro_batch_size
        # an evenly spaced subset: VLA samples come first and world-model samples after, so both kinds are covered
        chosen = np.unique(np.linspace(0, n - 1, min(n, self.cfg.train.val_batches * mb)).astype(int))
        batches = [chosen[i : i + mb].tolist() for i in range(0, len(chosen), mb)]
        fsdp = self.info.distributed and self.cfg.train.strategy == "fsdp"
        net = self.model if fsdp else dist_utils.unwrap(self.model)
        loader = _loader(self.val_set, batches, self.collate, 0)
        metrics = validate(net, loader, self.processor, self.info, self.autocast)
        metrics["vla/l1_units_mean_baseline"] = self.mean_baseline
        if self.cfg.train.val_image_samples > 0 and (fsdp or self.info.is_main):
            metrics |= world_model_image_metrics(
                net,
                self.val_set,
                self.processor,
                self._frames,
                self.info,
                self.autocast,
                self.cfg.train.val_image_samples,
            )
        return metrics

    def _frames(self, row: int) -> list[np.ndarray]:
        frame = self.source[row]
        return [frame.front] + ([frame.wrist] if self.spec.use_wrist else [])

    # ---------------------------------------------------------------- loop
    def train(self) -> dict[str, float]:
        """Run to ``total_steps``; returns the last validation metrics."""
        from tqdm import tqdm

        cfg, info = self.cfg, self.info
        writer = None
        if info.is_main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=self.step)
        batches = list(self.plan.micro_batches(info.rank, self.step, self.total_steps))
        loader = iter(_loader(self.train_set, batches, self.collate, cfg.data.num_workers))
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc="train",
            unit="step",
            disable=not (info.is_main and cfg.train.progress),
            dynamic_ncols=True,
        )
        metrics: dict[str, float] = {}
        self.model.train()
        while self.step < self.total_steps:
            t0 = time.perf_counter()
            parts = torch.zeros(5, dtype=torch.float64)  # loss, ce, l1, z, tokens
            for i in range(cfg.train.grad_accum):
                # Random draws (dropout) depend on the step and the global micro-batch only, so a run gives the same
                # losses whatever its number of processes, and a resumed run continues exactly.
                torch.manual_seed(micro_batch_seed(cfg.train.seed, self.step, i * info.world_size + info.rank))
                batch = {k: v.to(info.device) for k, v in next(loader).items()}
                sync = i == cfg.train.grad_accum - 1
                no_sync = getattr(self.model, "no_sync", None)
                ctx = no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext()
                with ctx, self.autocast():
                    out = self.model(batch["input_ids"], labels=batch["labels"], attention_mask=batch["attention_mask"])
                    (out.loss / cfg.train.grad_accum).backward()
                losses = (out.loss, out.ce_loss, out.l1_loss, out.z_loss)
                parts[:4] += torch.tensor([0.0 if v is None else float(v.detach()) for v in losses])
                parts[4] += float(batch["attention_mask"].sum())
            if not math.isfinite(float(parts[0])):
                raise FloatingPointError(f"the loss is not finite at step {self.step + 1}; lower optim.lr?")
            grad_norm = (
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
                if cfg.optim.grad_clip > 0
                else torch.tensor(0.0)
            )
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            parts = dist_utils.mean_across(parts.to(info.device), info).cpu()
            n = cfg.train.grad_accum
            elapsed = time.perf_counter() - t0
            record = {
                "step": self.step,
                "loss": float(parts[0] / n),
                "ce_loss": float(parts[1] / n),
                "l1_loss": float(parts[2] / n),
                "z_loss": float(parts[3] / n),
                "lr": float(self.scheduler.get_last_lr()[0]),
                "grad_norm": float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm),
                "samples_per_s": self.plan.global_batch / elapsed,
                "tokens_per_s": float(parts[4]) * info.world_size / elapsed,
            }
            tensorboard = self.step % cfg.train.log_every == 0 or self.step == self.total_steps
            self._log(record, writer if tensorboard else None)
            bar.set_postfix(
                loss=f"{record['loss']:.4f}", l1=f"{record['l1_loss']:.4f}", sps=f"{record['samples_per_s']:.1f}"
            )
            bar.update(1)
            last = self.step == self.total_steps
            if (cfg.train.eval_every and self.step % cfg.train.eval_every == 0) or last:
                metrics = self.evaluate()
                self._log({"step": self.step, **metrics}, writer)
                if info.is_main:
                    bar.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
            if (cfg.train.save_every and self.step % cfg.train.save_every == 0) or last:
                ckpt = save_checkpoint(
                    self.out,
                    self.step,
                    self.model,
                    self.optimizer,
                    self.scheduler,
                    info,
                    self.export,
                    cfg.train.keep_last,
                )
                if last and info.is_main:
                    final = self.out / FINAL_DIR
                    shutil.rmtree(final, ignore_errors=True)
                    shutil.copytree(ckpt / "model", final)
                    write_json(final / "metrics.json", {"step": self.step, **metrics})
        bar.close()
        if writer is not None:
            writer.close()
        return metrics


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rynnvla-train``."""
    cfg = parse_run_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        trainer = Trainer(cfg)
        trainer.train()
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"rynnvla-train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        dist_utils.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
