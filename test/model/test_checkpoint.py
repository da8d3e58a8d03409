"""Checkpoints: importing an official-format directory, save/load round trips, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from rynnvla_model.action_tokenizer import libero_norm_stats
from rynnvla_model.bench import synthetic_vla_prompt, synthetic_vla_sample
from rynnvla_model.checkpoint import (
    CheckpointError,
    from_pretrained,
    import_official_model,
    load_model,
    load_official_checkpoint,
    read_state_dict,
    save_pretrained,
)
from rynnvla_model.config import RynnVLAConfig
from rynnvla_model.inference import predict_chunk
from rynnvla_model.modeling import RynnVLAForActionWorldModel
from rynnvla_model.policy import RynnVLAPolicy
from rynnvla_model.processor import processor_for_compact
from rynnvla_model.vocab import VocabLayout
from rynnvla_model.vqgan import VQGAN, VQGANConfig

K, A, HEADS, HIDDEN, MP = 3, 4, 4, 32, 2
HEAD_DIM = HIDDEN // HEADS


def official_config_json(layout: VocabLayout, **changes: object) -> dict[str, object]:
    """A config.json as the release writes it (ChameleonXLLMXConfig under transformers 4.43)."""
    data: dict[str, object] = {
        "architectures": ["ChameleonXLLMXForConditionalGeneration_ck_action_head"],
        "model_type": "chameleon",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.43.0",
        "vocab_size": layout.vocab_size,
        "hidden_size": HIDDEN,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-5,
        "use_cache": True,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "model_parallel_size": MP,
        "swin_norm": False,
        "mlp_bias": False,
        "mask_image_logits": False,
        "dropout": 0.05,
        "z_loss_weight": 1e-5,
        "action_dim": A,
        "time_horizon": K,
        "vq_config": {"embed_dim": 256, "num_embeddings": 8192, "resolution": 512},
        "vocabulary_map": {"<image>": 8711},
    }
    data.update(changes)
    return data


def official_state(layout: VocabLayout, action_dim: int = A, seed: int = 0) -> dict[str, torch.Tensor]:
    """Tensors with the release's names and shapes: q/k norms as [model_parallel_size, head_dim], bf16."""
    torch.manual_seed(seed)
    cfg = RynnVLAConfig.tiny(action_dim, K, hidden_size=HIDDEN, num_attention_heads=HEADS, intermediate_size=64)
    ref = RynnVLAForActionWorldModel(
        RynnVLAConfig(**{**cfg.to_dict(), "vocab_layout": layout.to_dict(), "vocab_size": layout.vocab_size})
    )
    state = {}
    for name, tensor in ref.state_dict().items():
        if "_norm." in name and ("q_norm" in name or "k_norm" in name):
            tensor = torch.randn(MP, HEAD_DIM) * 0.3 + (1.0 if name.endswith("weight") else 0.0)
        state[name] = tensor.to(torch.bfloat16)
    return state


def write_official(directory: Path, state: dict[str, torch.Tensor], config: dict[str, object]) -> Path:
    """Two shards + index + config.json, as transformers' save_pretrained lays them out."""
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted(state)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:]), start=1):
        fname = f"model-{i:05d}-of-00002.safetensors"
        save_file({n: state[n].contiguous() for n in part}, str(directory / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, fname))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def expanded(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference conversion written out: each shard row serves HEADS / MP consecutive heads."""
    out = {}
    for name, tensor in state.items():
        if "q_norm" in name or "k_norm" in name:
            tensor = torch.cat([tensor[i : i + 1].expand(HEADS // MP, -1) for i in range(MP)])
        out[name] = tensor.float()
    return out


def sample(layout: VocabLayout, action_dim: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    prompt = synthetic_vla_prompt(layout, rng, n_text=5, state_dim=3, n_images=2, latent=2)
    ids, labels = synthetic_vla_sample(layout, prompt, rng.integers(0, 256, (K, action_dim)))
    return torch.tensor(ids)[None], torch.tensor(labels)[None], prompt


def outputs(model: RynnVLAForActionWorldModel, layout: VocabLayout) -> tuple[torch.Tensor, ...]:
    """Logits, head actions and loss of a VLA sample, and a discrete chunk."""
    ids, labels, prompt = sample(layout, model.action_dim)
    with torch.no_grad():
        out = model(ids, labels=labels)
    chunk = predict_chunk(model, [prompt], mode="discrete")
    return out.logits, out.actions, out.loss, chunk.token_ids


LAYOUT = VocabLayout.compact(codebook_size=16)


@pytest.fixture
def official_dir(tmp_path: Path) -> Path:
    state = official_state(LAYOUT)
    state["model.vqmodel.quantize.embedding.weight"] = torch.zeros(8, 4, dtype=torch.bfloat16)
    return write_official(tmp_path / "epoch35", state, official_config_json(LAYOUT))


def test_official_import_equals_reference_and_round_trips(official_dir: Path, tmp_path: Path) -> None:
    model = import_official_model(official_dir, LAYOUT)
    cfg = model.config
    assert (cfg.action_dim, cfg.time_horizon, cfg.dropout, cfg.z_loss_weight) == (A, K, 0.05, 1e-5)
    assert cfg.rope_parameters["rope_theta"] == 10000.0 and not cfg.mask_image_logits
    assert model.dtype == torch.float32
    q_norm = model.model.layers[1].self_attn.q_norm.weight
    raw = read_state_dict(official_dir)["model.layers.1.self_attn.q_norm.weight"].float()
    assert q_norm.shape == (HEADS, HEAD_DIM)
    assert torch.equal(q_norm[: HEADS // MP], raw[0].expand(HEADS // MP, -1))
    assert torch.equal(q_norm[HEADS // MP :], raw[1].expand(HEADS // MP, -1))

    reference = RynnVLAForActionWorldModel(model.config).eval()
    state = {k: v for k, v in read_state_dict(official_dir).items() if not k.startswith("model.vqmodel")}
    reference.load_state_dict(expanded(state), strict=True)
    imported = outputs(model, LAYOUT)
    for got, want in zip(imported, outputs(reference, LAYOUT), strict=True):
        assert torch.equal(got, want)

    torch.manual_seed(0)
    vqgan = VQGAN(VQGANConfig.tiny(n_embed=16, downsample_factor=16)).eval()
    processor = processor_for_compact(vqgan, libero_norm_stats(), image_size=32)
    save_pretrained(model, processor, tmp_path / "ours")
    with pytest.raises(CheckpointError, match="actions have 7 dims, the model's 4"):
        from_pretrained(tmp_path / "ours")
    ours = tmp_path / "ours_model"
    save_pretrained(model, None, ours, max_shard_bytes=50_000)
    assert len(list(ours.glob("model-*-of-*.safetensors"))) > 1
    again = load_model(ours)
    assert again.config.to_dict() == model.config.to_dict()
    for got, want in zip(outputs(again, LAYOUT), imported, strict=True):
        assert torch.equal(got, want)


def test_round_trip_with_processor(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vqgan = VQGAN(VQGANConfig.tiny(n_embed=16, downsample_factor=16)).eval()
    processor = processor_for_compact(vqgan, libero_norm_stats(), image_size=32)
    model = RynnVLAForActionWorldModel(RynnVLAConfig.tiny(7, K, codebook_size=16)).eval()
    save_pretrained(model, processor, tmp_path / "ckpt")
    model2, processor2 = from_pretrained(tmp_path / "ckpt")
    assert processor2.layout == model2.layout == model.layout
    for got, want in zip(outputs(model2, model.layout), outputs(model, model.layout), strict=True):
        assert torch.equal(got, want)
    bf16 = load_model(tmp_path / "ckpt", dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16 and bf16.model.rotary_emb.inv_freq.dtype == torch.float32


def test_k_or_a_that_disagree_are_errors(official_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"time_horizon=3, but time_horizon=5 was requested"):
        import_official_model(official_dir, LAYOUT, time_horizon=5)
    with pytest.raises(CheckpointError, match=r"action_dim=4, but action_dim=7 was requested"):
        import_official_model(official_dir, LAYOUT, action_dim=7)
    assert import_official_model(official_dir, LAYOUT, action_dim=A, time_horizon=K).time_horizon == K
    liar = write_official(tmp_path / "liar", official_state(LAYOUT), official_config_json(LAYOUT, time_horizon=5))
    with pytest.raises(CheckpointError, match=r"trained for time_horizon=3, action_dim=4.*config says time_horizon=5"):
        import_official_model(liar, LAYOUT)


def test_names_and_shapes_must_match(tmp_path: Path) -> None:
    state = official_state(LAYOUT)
    missing = dict(state)
    del missing["model.layers.0.mlp.up_proj.weight"]
    with pytest.raises(CheckpointError, match=r"missing tensors: model\.layers\.0\.mlp\.up_proj\.weight"):
        import_official_model(write_official(tmp_path / "m", missing, official_config_json(LAYOUT)), LAYOUT)
    extra = dict(state, **{"model.layers.0.self_attn.extra.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match=r"unexpected tensors: model\.layers\.0\.self_attn\.extra\.weight"):
        import_official_model(write_official(tmp_path / "u", extra, official_config_json(LAYOUT)), LAYOUT)
    wrong = dict(state, **{"lm_head.weight": torch.zeros(LAYOUT.vocab_size, HIDDEN + 1, dtype=torch.bfloat16)})
    with pytest.raises(CheckpointError, match=r"shape mismatches: lm_head\.weight"):
        import_official_model(write_official(tmp_path / "s", wrong, official_config_json(LAYOUT)), LAYOUT)
    bad_norm = dict(state, **{"model.layers.0.self_attn.k_norm.weight": torch.ones(3, HEAD_DIM)})
    with pytest.raises(CheckpointError, match=r"k_norm\.weight has 3 rows"):
        import_official_model(write_official(tmp_path / "n", bad_norm, official_config_json(LAYOUT)), LAYOUT)
    big = VocabLayout.compact(codebook_size=32)
    with pytest.raises(CheckpointError, match="vocab_size"):
        import_official_model(write_official(tmp_path / "v", state, official_config_json(LAYOUT)), big)


def test_corrupt_or_incomplete_checkpoints(official_dir: Path, tmp_path: Path) -> None:
    shard = official_dir / "model-00002-of-00002.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        import_official_model(official_dir, LAYOUT)
    shard.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        import_official_model(official_dir, LAYOUT)
    (official_dir / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        import_official_model(official_dir, LAYOUT)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps(official_config_json(LAYOUT)))
    with pytest.raises(CheckpointError, match="no weights"):
        import_official_model(empty, LAYOUT)
    with pytest.raises(CheckpointError, match="model_type 'chameleon'"):
        load_model(empty)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nowhere")
    (empty / "config.json").write_text(json.dumps({"model_type": "chameleon", "hidden_size": 8}))
    with pytest.raises(CheckpointError, match="no 'action_dim'"):
        import_official_model(empty, LAYOUT)


def write_official_tokenizer(directory: Path) -> None:
    """A stand-in for the release's chameleon/tokenizer folder: Chameleon ids for every role, a tiny VQGAN."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<eoss>": 8196, "<racm3:break>": 8197}
    for i, code in enumerate(np.random.default_rng(1).permutation(8192)):
        vocab["IMGIMG" + "".join("ABCDEFGHIJ"[int(d)] for d in str(code)) + "Z"] = 4 + i
    vocab.update({f"<reserved{i - 4:05d}>": i for i in range(8198, 16010)})
    vocab.update(
        {w: 20000 + i for i, w in enumerate(["What", "action", "should", "the", "robot", "take", "to", "go", "?"])}
    )
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    directory.mkdir(parents=True)
    tokenizer.save(str(directory / "text_tokenizer.json"))
    cfg = VQGANConfig(ch=32, ch_mult=(1,) * 5, num_res_blocks=1, z_channels=8, embed_dim=4, n_embed=32, resolution=32)
    dd = {k: v for k, v in cfg.to_dict().items() if k not in ("n_embed", "embed_dim", "beta", "num_groups")}
    params = {"embed_dim": cfg.embed_dim, "n_embed": cfg.n_embed, "ddconfig": dd}
    (directory / "vqgan.yaml").write_text(yaml.safe_dump({"model": {"params": params}}))
    torch.save({"state_dict": VQGAN(cfg).state_dict()}, directory / "vqgan.ckpt")


def test_load_official_checkpoint_with_tokenizer_folder(tmp_path: Path) -> None:
    write_official_tokenizer(tmp_path / "tokenizer")
    from rynnvla_model.text_tokenizer import ChameleonTextTokenizer

    layout = ChameleonTextTokenizer(tmp_path / "tokenizer" / "text_tokenizer.json").layout()
    assert layout.vocab_size == 65536
    ckpt = write_official(tmp_path / "ckpt", official_state(layout, 7), official_config_json(layout, action_dim=7))
    stats = libero_norm_stats()
    model, processor = load_official_checkpoint(ckpt, tmp_path / "tokenizer", stats, action_dim=7, image_size=32)
    assert processor.layout == model.layout and model.config.vocab_size == 65536
    with pytest.raises(CheckpointError, match="time_horizon=10 was requested"):
        load_official_checkpoint(ckpt, tmp_path / "tokenizer", stats, time_horizon=10, image_size=32)
    policy = RynnVLAPolicy.from_official(ckpt, tmp_path / "tokenizer", stats, 7, K, image_size=32)
    frame = np.zeros((32, 32, 3), dtype=np.uint8)
    out = policy.predict_chunk("go", np.zeros(8), [frame], [frame])
    assert out.actions.shape == (K, 7) and np.all(np.isfinite(out.actions))
