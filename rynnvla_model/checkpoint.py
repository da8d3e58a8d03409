"""Checkpoints: our save/load format and an importer for official RynnVLA-002 checkpoint directories.

Our format (one directory): ``config.json`` (a :class:`RynnVLAConfig`, ``model_type`` "rynnvla"), the weights as
``model.safetensors`` or shards ``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json`` (the
transformers layout), and the processor's files (tokenizers, ``norm_stats.json``) written by the processor itself.

Official format (``xllmx/util/ckpt.py`` of the release: ``save_pretrained`` under transformers 4.43, bf16):
sharded safetensors + index + ``config.json`` holding ``ChameleonConfig`` fields plus ``action_dim``,
``time_horizon``, ``z_loss_weight``, ``mask_image_logits``, ``dropout``. Parameter names equal ours; the q/k-norm
weights and biases are stored per model-parallel shard as [model_parallel_size, head_dim] and are expanded here to
transformers 5's [heads, head_dim] by repeating each shard's row over its heads. ``model.vqmodel.*`` (deleted before
training in the release) and rotary ``inv_freq`` buffers are ignored if present; any other difference is an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers.models.chameleon.modeling_chameleon import ChameleonRotaryEmbedding

from rynnvla_model.config import RynnVLAConfig
from rynnvla_model.modeling import RynnVLAForActionWorldModel, default_dtype, empty_model
from rynnvla_model.vocab import VocabLayout

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DEFAULT_SHARD_BYTES = 4 * 1024**3

# Architecture fields read from an official config.json (everything else there is ignored).
OFFICIAL_ARCH_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "attention_bias",
    "mlp_bias",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "initializer_range",
)
OFFICIAL_EXTRA_FIELDS = ("z_loss_weight", "mask_image_logits", "dropout")
IGNORED_PREFIXES = ("model.vqmodel.",)
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


class CheckpointError(ValueError):
    """A checkpoint directory is missing files, is corrupt or does not fit the model."""


# ---------------------------------------------------------------------------------------------------- low level
def _read_json(path: Path) -> dict[str, Any]:
    if not path.parent.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {path.parent}")
    if not path.is_file():
        raise CheckpointError(f"missing {path.name} in {path.parent}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def weight_files(directory: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint directory (from the index if there is one)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    index = directory / INDEX_FILE
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index} has no weight_map")
        files = [directory / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index} lists shard(s) that are missing: {missing}")
        return files
    single = directory / WEIGHTS_FILE
    if single.is_file():
        return [single]
    raise CheckpointError(f"no weights in {directory}: expected {WEIGHTS_FILE} or {INDEX_FILE}")


def read_state_dict(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors checkpoint, on the CPU."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        try:
            part = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"cannot read {path} (corrupt or truncated safetensors file): {exc}") from exc
        duplicated = set(part) & set(state)
        if duplicated:
            raise CheckpointError(f"{path.name} repeats tensors of another shard, e.g. {sorted(duplicated)[:3]}")
        state.update(part)
    return state


def write_state_dict(
    state: Mapping[str, torch.Tensor], directory: str | Path, max_shard_bytes: int = DEFAULT_SHARD_BYTES
) -> list[Path]:
    """Write ``state`` as one file, or as shards + index when it exceeds ``max_shard_bytes``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    for stale in [directory / INDEX_FILE, *directory.glob("model-*-of-*.safetensors"), directory / WEIGHTS_FILE]:
        stale.unlink(missing_ok=True)
    meta = {"format": "pt"}
    if len(shards) == 1:
        path = directory / WEIGHTS_FILE
        save_file(shards[0], str(path), metadata=meta)
        return [path]
    paths, weight_map = [], {}
    for i, shard in enumerate(shards, start=1):
        path = directory / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path), metadata=meta)
        paths.append(path)
        weight_map.update(dict.fromkeys(shard, path.name))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return paths


def _few(names: list[str] | set[str], n: int = 6) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" ... ({len(names)} in all)" if len(names) > n else "")


def build_model(
    config: RynnVLAConfig,
    state: Mapping[str, torch.Tensor],
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    source: str = "checkpoint",
) -> RynnVLAForActionWorldModel:
    """A model of ``config`` holding exactly ``state`` (strict: missing, unexpected or mis-shaped -> error)."""
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    model = empty_model(config, device, dtype)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    problems = []
    if missing:
        problems.append(f"missing tensors: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {_few(unexpected)}")
    wrong = [
        f"{k} {tuple(state[k].shape)} != {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if wrong:
        problems.append(f"shape mismatches: {_few(wrong)}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model config: " + "; ".join(problems))
    model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in state.items()}, strict=True, assign=True)
    model.model.rotary_emb = ChameleonRotaryEmbedding(config=config).to(device)
    return model.eval()


# ---------------------------------------------------------------------------------------------------- our format
def save_pretrained(
    model: RynnVLAForActionWorldModel,
    processor: Any | None,
    directory: str | Path,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write config, weights (``state_dict``, default the model's) and the processor's files into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config_dict = model.config.to_dict()
    config_dict.pop("_attn_implementation_internal", None)
    (directory / CONFIG_FILE).write_text(json.dumps(config_dict, indent=2, default=str) + "\n", encoding="utf-8")
    write_state_dict(model.state_dict() if state_dict is None else state_dict, directory, max_shard_bytes)
    if processor is not None:
        processor.save_pretrained(directory)
    return directory


def load_config(directory: str | Path) -> RynnVLAConfig:
    """The :class:`RynnVLAConfig` saved in ``directory``."""
    path = Path(directory) / CONFIG_FILE
    data = _read_json(path)
    if data.get("model_type") != RynnVLAConfig.model_type:
        raise CheckpointError(
            f"{path} has model_type {data.get('model_type')!r}, expected 'rynnvla' "
            "(official RynnVLA-002 checkpoints are read with load_official_checkpoint)"
        )
    for key in ("model_type", "transformers_version", "architectures"):
        data.pop(key, None)
    try:
        return RynnVLAConfig(**data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid configuration: {exc}") from exc


def load_model(
    directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> RynnVLAForActionWorldModel:
    """The model saved in ``directory`` by :func:`save_pretrained` (no processor)."""
    config = load_config(directory)
    return build_model(config, read_state_dict(directory), device, dtype, source=str(directory))


def from_pretrained(
    directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[RynnVLAForActionWorldModel, Any]:
    """Model and processor saved in ``directory`` by :func:`save_pretrained`."""
    from rynnvla_model.processor import RynnVLAProcessor

    model = load_model(directory, device, dtype)
    processor = RynnVLAProcessor.from_pretrained(directory)
    check_processor_fits(model, processor)
    return model, processor


def check_processor_fits(model: RynnVLAForActionWorldModel, processor: Any) -> None:
    """Raise CheckpointError when the processor's vocabulary or action size disagree with the model."""
    layout = getattr(processor, "layout", None)
    if layout is not None and layout != model.layout:
        raise CheckpointError(f"the processor's vocabulary layout ({layout.name}) differs from the model's")
    action_tok = getattr(processor, "action_tokenizer", None)
    if action_tok is not None and action_tok.dim != model.action_dim:
        raise CheckpointError(f"the processor's actions have {action_tok.dim} dims, the model's {model.action_dim}")


# ---------------------------------------------------------------------------------------------------- official
def official_config(
    data: Mapping[str, Any],
    layout: VocabLayout,
    action_dim: int | None = None,
    time_horizon: int | None = None,
    source: str = CONFIG_FILE,
) -> RynnVLAConfig:
    """A :class:`RynnVLAConfig` from an official ``config.json`` dict; K/A must agree with any given."""
    for key in ("action_dim", "time_horizon", "hidden_size", "num_hidden_layers", "num_attention_heads"):
        if key not in data:
            raise CheckpointError(f"{source} has no {key!r}: not a RynnVLA-002 action-head checkpoint config")
    for name, want in (("action_dim", action_dim), ("time_horizon", time_horizon)):
        if want is not None and int(want) != int(data[name]):
            raise CheckpointError(f"{source} has {name}={data[name]}, but {name}={want} was requested")
    if data.get("swin_norm"):
        raise CheckpointError(f"{source}: swin_norm=True checkpoints are not supported")
    kwargs = {k: data[k] for k in OFFICIAL_ARCH_FIELDS if k in data and data[k] is not None}
    kwargs.update({k: data[k] for k in OFFICIAL_EXTRA_FIELDS if k in data and data[k] is not None})
    vocab = int(kwargs.get("vocab_size", 65536))
    if vocab != layout.vocab_size:
        raise CheckpointError(f"{source} has vocab_size={vocab}, the tokenizer layout has {layout.vocab_size} ids")
    try:
        return RynnVLAConfig(
            action_dim=int(data["action_dim"]),
            time_horizon=int(data["time_horizon"]),
            vocab_layout=layout.to_dict(),
            bos_token_id=layout.bos,
            eos_token_id=layout.turn_sep,
            **kwargs,
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: invalid configuration: {exc}") from exc


def convert_official_state(
    state: Mapping[str, torch.Tensor], config: RynnVLAConfig, model_parallel_size: int = 1
) -> dict[str, torch.Tensor]:
    """Official tensor names/shapes -> ours: expand q/k-norm [mp, head_dim] to [heads, head_dim], drop VQ/rotary."""
    head_dim = config.hidden_size // config.num_attention_heads
    heads = {"q_norm": config.num_attention_heads, "k_norm": config.num_key_value_heads}
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.startswith(IGNORED_PREFIXES) or name.endswith(IGNORED_SUFFIXES):
            continue
        parts = name.split(".")
        if len(parts) >= 2 and parts[-2] in heads and parts[-1] in ("weight", "bias"):
            n_heads = heads[parts[-2]]
            if tensor.dim() != 2 or tensor.shape[-1] != head_dim:
                raise CheckpointError(f"{name} has shape {tuple(tensor.shape)}, expected (shards, {head_dim})")
            shards = tensor.shape[0]
            if shards != n_heads:
                if shards != model_parallel_size or n_heads % shards:
                    raise CheckpointError(
                        f"{name} has {shards} rows; expected model_parallel_size={model_parallel_size} "
                        f"(dividing {n_heads} heads) or {n_heads}"
                    )
                tensor = tensor.repeat_interleave(n_heads // shards, dim=0)
        out[name] = tensor
    return out


def check_action_head_shapes(state: Mapping[str, torch.Tensor], config: RynnVLAConfig, source: str) -> None:
    """Clear error when the head's weights imply another K or A than the config."""
    emb = state.get("action_head.action_token_embeddings.weight")
    fc2 = state.get("action_head.output_projection.model.fc2.weight")
    if emb is None or fc2 is None:
        raise CheckpointError(f"{source} has no continuous action head (action_head.* tensors missing)")
    a_ckpt = int(fc2.shape[0])
    per_step = a_ckpt * config.hidden_size
    k_ckpt = int(emb.shape[-1]) // per_step if per_step else 0
    if a_ckpt != config.action_dim or k_ckpt != config.time_horizon:
        raise CheckpointError(
            f"{source}: the action head was trained for time_horizon={k_ckpt}, action_dim={a_ckpt}, "
            f"but the config says time_horizon={config.time_horizon}, action_dim={config.action_dim}"
        )


def import_official_model(
    checkpoint_dir: str | Path,
    layout: VocabLayout,
    action_dim: int | None = None,
    time_horizon: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> RynnVLAForActionWorldModel:
    """The model of an official RynnVLA-002 checkpoint directory, with the vocabulary ``layout`` of its tokenizer."""
    checkpoint_dir = Path(checkpoint_dir)
    data = _read_json(checkpoint_dir / CONFIG_FILE)
    config = official_config(data, layout, action_dim, time_horizon, source=str(checkpoint_dir / CONFIG_FILE))
    state = convert_official_state(read_state_dict(checkpoint_dir), config, int(data.get("model_parallel_size") or 1))
    check_action_head_shapes(state, config, str(checkpoint_dir))
    return build_model(config, state, device, dtype, source=str(checkpoint_dir))


def load_official_checkpoint(
    checkpoint_dir: str | Path,
    tokenizer_dir: str | Path,
    norm_stats: Any,
    action_dim: int | None = None,
    time_horizon: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    image_size: int = 256,
) -> tuple[RynnVLAForActionWorldModel, Any]:
    """Model + processor from an official checkpoint, the official tokenizer folder and normalisation stats.

    ``tokenizer_dir`` holds ``text_tokenizer.json``, ``vqgan.yaml`` and ``vqgan.ckpt`` (the release's
    ``chameleon/tokenizer``); ``norm_stats`` is a :class:`NormStats` (or a path to a ``norm_stats.json``) with
    ``action`` and optionally ``state`` bounds; ``image_size`` is 256 for the VLA models, 512 for the released
    world models.
    """
    from rynnvla_model.processor import RynnVLAProcessor

    processor = RynnVLAProcessor.from_official(tokenizer_dir, norm_stats, image_size=image_size)
    model = import_official_model(checkpoint_dir, processor.layout, action_dim, time_horizon, device, dtype)
    check_processor_fits(model, processor)
    return model, processor
