"""Run configuration of ``rynnvla-train``: dataclasses, a YAML file and ``--section.field value`` overrides.

Every field has a help text; the command-line parser is generated from the dataclasses, so ``--help`` lists all of
them with their defaults. Precedence: defaults < ``--config`` YAML < command-line flags. The resolved configuration
is saved as ``run_config.yaml`` in the output directory (and a resumed run checks it did not change the model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RUN_CONFIG_FILE = "run_config.yaml"


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class DataConfig:
    """Where the samples come from and how they are cut."""

    root: str = _f("", "LeRobot v3 dataset root (rynnvla-convert output, lerobot-record output, ...)")
    front_key: str = _f("observation.images.front", "front camera feature")
    wrist_key: str = _f("observation.images.wrist", "wrist camera feature (empty: no wrist view)")
    state_key: str = _f("observation.state", "state feature")
    action_key: str = _f("action", "action feature")
    use_wrist: bool = _f(True, "put the wrist view in the prompts")
    use_state: bool = _f(True, "put the state in the VLA prompts")
    history: int = _f(1, "M: frames per camera in a VLA prompt")
    history_stride: int = _f(1, "dataset rows between history frames")
    time_horizon: int = _f(5, "K: actions per chunk")
    relative_dims: list[int] = field(
        default_factory=list, metadata={"help": "action dims learned as deltas to the current state (SO100: 0 1 2 3 4)"}
    )
    world_model_ratio: float = _f(1.0, "world-model samples per VLA sample (0: VLA only)")
    world_model_horizon: int = _f(1, "H: world-model samples predict the frames H rows ahead (from the action at H-1)")
    val_fraction: float = _f(0.1, "fraction of episodes held out for validation")
    split_seed: int = _f(0, "seed of the episode split and of the world-model sample draw")
    image_size: int = _f(256, "side of the square images the VQGAN tokenises")
    cache: bool = _f(True, "encode every frame once and keep the codes in <output_dir>/code_cache (else encode live)")
    max_seq_len: int = _f(4096, "truncate samples to this many tokens")
    num_workers: int = _f(0, "DataLoader worker processes per rank")


@dataclass
class ModelConfig:
    """Which model to train and how it starts."""

    init: str = _f("scratch", "scratch | official | a checkpoint directory written by save_pretrained")
    preset: str = _f("tiny", "scratch only: tiny | small (compact vocabulary)")
    overrides: dict[str, Any] = field(
        default_factory=dict, metadata={"help": 'scratch only: RynnVLAConfig fields as JSON, e.g. {"hidden_size": 64}'}
    )
    vqgan: str = _f("", "scratch only: VQGAN directory (rynnvla-train-vq output)")
    official_checkpoint: str = _f("", "official only: RynnVLA-002 checkpoint directory")
    official_tokenizer: str = _f("", "official only: folder with text_tokenizer.json, vqgan.yaml, vqgan.ckpt")
    robot_io: str = _f("", "robot_io.json copied beside every checkpoint (default: <data.root>/robot_io.json)")
    gradient_checkpointing: bool = _f(False, "recompute decoder layers in the backward pass (less memory)")


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule."""

    lr: float = _f(1e-4, "peak learning rate")
    min_lr: float = _f(0.0, "learning rate at the end of the cosine schedule")
    schedule: str = _f("cosine", "cosine | constant (after warm-up)")
    warmup_steps: int = _f(0, "linear warm-up steps")
    weight_decay: float = _f(0.1, "AdamW weight decay (not on norms, biases and embeddings)")
    beta1: float = _f(0.9, "AdamW beta1")
    beta2: float = _f(0.95, "AdamW beta2")
    eps: float = _f(1e-8, "AdamW epsilon")
    grad_clip: float = _f(4.0, "clip the global gradient norm to this (0: off)")


@dataclass
class TrainConfig:
    """The loop, checkpoints, logging and parallelism."""

    output_dir: str = _f("outputs/train", "run directory: checkpoints, logs, split, final model")
    steps: int = _f(1000, "optimizer steps (ignored when epochs > 0)")
    epochs: float = _f(0.0, "train this many passes over the training samples instead of `steps`")
    micro_batch_size: int = _f(8, "samples per forward pass per rank")
    grad_accum: int = _f(1, "micro-batches per optimizer step (global batch = micro x accum x world size)")
    precision: str = _f("auto", "auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16")
    strategy: str = _f("ddp", "ddp | fsdp (FULL_SHARD per decoder layer; used when the world size is > 1)")
    device: str = _f("auto", "auto | cpu | cuda")
    seed: int = _f(0, "seed of the model init and the sample order")
    save_every: int = _f(500, "write a resumable checkpoint every N steps (and at the end)")
    keep_last: int = _f(2, "resumable checkpoints kept")
    eval_every: int = _f(500, "validate every N steps (and at the end; 0: only at the end)")
    val_batches: int = _f(20, "micro-batches per validation")
    val_image_samples: int = _f(8, "world-model samples decoded to pixels for PSNR/SSIM per validation")
    log_every: int = _f(10, "TensorBoard scalars every N steps")
    resume: str = _f("auto", "auto (latest checkpoint in output_dir if any) | never | a checkpoint directory")
    progress: bool = _f(True, "show a progress bar")


@dataclass
class RunConfig:
    """A whole ``rynnvla-train`` run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        """Build from a nested dict; unknown sections or fields raise ValueError naming them."""
        cfg = cls()
        unknown_sections = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown_sections:
            raise ValueError(f"{source}: unknown section(s) {unknown_sections}")
        for section, values in data.items():
            _apply(getattr(cfg, section), values or {}, f"{source}: {section}")
        return cfg

    def save(self, directory: str | Path) -> Path:
        """Write ``run_config.yaml`` into ``directory``."""
        path = Path(directory) / RUN_CONFIG_FILE
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        return path


def _hints(section: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(section))


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            low = str(value).strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"not a boolean: {value!r}")
            return low in ("true", "1", "yes")
        if origin is list:
            (item,) = typing.get_args(hint)
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            return [item(v) for v in value]
        if origin is dict:
            value = json.loads(value) if isinstance(value, str) else value
            if not isinstance(value, dict):
                raise ValueError(f"not a mapping: {value!r}")
            return dict(value)
        return hint(value)
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _apply(section: Any, values: dict[str, Any], where: str) -> None:
    hints = _hints(section)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(hints)}")
    for name, value in values.items():
        setattr(section, name, _coerce(hints[name], value, f"{where}.{name}"))


def build_parser(prog: str = "rynnvla-train") -> argparse.ArgumentParser:
    """The command-line parser: ``--config`` plus one ``--section.field`` flag per field."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train a RynnVLA model (VLA + world model) on a LeRobot dataset. Run with torchrun for "
        "several processes (gloo on CPU, NCCL on GPU). Values: defaults < --config YAML < flags.",
    )
    parser.add_argument("--config", help="YAML file with sections data, model, optim, train")
    defaults = RunConfig()
    for section_field in dataclasses.fields(RunConfig):
        section = getattr(defaults, section_field.name)
        group = parser.add_argument_group(section_field.name, type(section).__doc__)
        hints = _hints(section)
        for f in dataclasses.fields(section):
            default = getattr(section, f.name)
            shown = json.dumps(default) if isinstance(default, (dict, list)) else default
            kwargs: dict[str, Any] = {"dest": f"{section_field.name}.{f.name}", "default": argparse.SUPPRESS}
            if typing.get_origin(hints[f.name]) is list:
                kwargs["nargs"] = "*"
            group.add_argument(
                f"--{section_field.name}.{f.name}", help=f"{f.metadata['help']} (default: {shown})", **kwargs
            )
    return parser


def parse_run_config(argv: list[str] | None = None) -> RunConfig:
    """Parse the command line into a :class:`RunConfig`."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    data: dict[str, Any] = {}
    config_path = args.pop("config", None)
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            parser.error(f"config file {path} not found")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        cfg = RunConfig.from_dict(data, source=str(config_path or "defaults"))
        for key, value in args.items():
            section, name = key.split(".", 1)
            _apply(getattr(cfg, section), {name: value}, "command line")
    except ValueError as exc:
        parser.error(str(exc))
    return cfg
