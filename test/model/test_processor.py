"""RynnVLAProcessor: pixel-level prompts, save/load, and the official tokenizer folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rynnvla_model.action_tokenizer import NormStats, libero_norm_stats
from rynnvla_model.processor import RynnVLAProcessor, processor_for_compact, processor_for_official
from rynnvla_model.vqgan import VQGAN, VQGANConfig

SIZE = 32  # 2x2 latent grid with 16x downsampling: fast on a CPU


def frame(value: int) -> np.ndarray:
    img = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    img[..., 0] = value
    img[: SIZE // 2, :, 1] = 255 - value
    return img


@pytest.fixture(scope="module")
def processor() -> RynnVLAProcessor:
    torch.manual_seed(3)
    vqgan = VQGAN(VQGANConfig.tiny(n_embed=64, downsample_factor=16)).eval()
    with torch.no_grad():
        vqgan.quantize.embedding.weight.normal_()
        vqgan.quant_conv.weight.mul_(20.0)
    return processor_for_compact(vqgan, libero_norm_stats(), image_size=SIZE)


def distinct_frames(p: RynnVLAProcessor, n: int) -> list[np.ndarray]:
    frames = [frame(v) for v in np.linspace(0, 255, n).astype(int)]
    codes = p.encode_images(frames)
    assert len({c.tobytes() for c in codes}) == n, "precondition: the frames must tokenize differently"
    return frames


def test_vla_prompt_interleaves_front_and_wrist(processor: RynnVLAProcessor) -> None:
    f0, w0, f1, w1 = distinct_frames(processor, 4)
    state = np.zeros(8)
    prompt = processor.vla_prompt_from_images("put the bowl on the plate", state, [f0, f1], [w0, w1])
    expected = processor.builder.vla_prompt(
        "put the bowl on the plate", state, processor.encode_images([f0, w0, f1, w1])
    )
    assert np.array_equal(prompt, expected)
    assert prompt[0] == processor.layout.bos and prompt[-1] == processor.layout.turn_sep
    assert len(processor.decode_images(prompt)) == 4
    assert processor.decode_images(prompt)[0].shape == (SIZE, SIZE, 3)
    front_only = processor.vla_prompt_from_images("go", None, f0)
    assert len(processor.builder.decode_image_codes(front_only)) == 1
    with pytest.raises(ValueError, match="2 front frames but 1 wrist"):
        processor.vla_prompt_from_images("go", None, [f0, f1], [w0])
    with pytest.raises(ValueError, match="expected images of 32x32"):
        processor.vla_prompt_from_images("go", None, [np.zeros((24, 32, 3), dtype=np.uint8)])


def test_samples_from_images_round_trip(processor: RynnVLAProcessor) -> None:
    f0, w0, f1, w1 = distinct_frames(processor, 4)
    bounds = libero_norm_stats()["action"]
    actions = np.random.default_rng(0).uniform(bounds.min, bounds.max, size=(5, 7))
    sample = processor.vla_sample_from_images("go", np.zeros(8), [f0], [w0], actions)
    assert sample.kind == "vla"
    assert np.all(np.abs(processor.decode_actions(sample.input_ids) - actions) <= processor.action_tokenizer.half_bin)
    wm = processor.world_model_sample_from_images(f0, w0, actions[0], f1, w1)
    grids = processor.builder.decode_image_codes(wm.input_ids)
    want = processor.encode_images([f0, w0, f1, w1])
    assert all(np.array_equal(g, w) for g, w in zip(grids, want, strict=True))
    answer = wm.input_ids[wm.prompt_length :]
    assert len(processor.decode_images(answer)) == 2
    prompt = processor.world_model_prompt_from_images(f0, w0, actions[0])
    assert np.array_equal(prompt, wm.input_ids[: wm.prompt_length])
    with pytest.raises(ValueError, match="for both the current and the next step"):
        processor.world_model_sample_from_images(f0, w0, actions[0], f1, None)


def test_save_and_load_pretrained(processor: RynnVLAProcessor, tmp_path: Path) -> None:
    processor.save_pretrained(tmp_path)
    for name in ("processor_config.json", "norm_stats.json", "byte_tokenizer.json", "vqgan/config.json",
                 "vqgan/model.safetensors"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    again = RynnVLAProcessor.from_pretrained(tmp_path)
    assert again.layout == processor.layout and again.image_size == processor.image_size
    assert again.norm_stats == processor.norm_stats and again.state_dim == 8 and again.action_dim == 7
    frames = [frame(10), frame(200)]
    a = processor.vla_prompt_from_images("stack the cups", np.ones(8) * 0.1, frames[:1], frames[1:])
    b = again.vla_prompt_from_images("stack the cups", np.ones(8) * 0.1, frames[:1], frames[1:])
    assert np.array_equal(a, b)
    (tmp_path / "norm_stats.json").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "norm_stats.json"))):
        RynnVLAProcessor.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"processor_config\.json"):
        RynnVLAProcessor.from_pretrained(tmp_path / "nowhere")


def write_official_folder(directory: Path) -> VQGANConfig:
    """A stand-in for chameleon/tokenizer: a WordLevel vocab with Chameleon's ids, a tiny vqgan.yaml/.ckpt."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<eoss>": 8196, "<racm3:break>": 8197}
    for i, code in enumerate(np.random.default_rng(0).permutation(8192)):
        vocab["IMGIMG" + "".join(chr(65 + int(d)) for d in str(code)) + "Z"] = 4 + i
    vocab.update({f"<reserved{i - 4:05d}>": i for i in range(8198, 16100)})
    vocab.update({w: 16100 + i for i, w in enumerate(["What", "action", "should", "the", "robot", "take", "to", "?"])})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "text_tokenizer.json"))
    cfg = VQGANConfig(ch=32, ch_mult=(1, 1, 1, 1, 1), num_res_blocks=1, z_channels=8, embed_dim=4, n_embed=64,
                      resolution=SIZE)  # fmt: skip
    dd = {k: v for k, v in cfg.to_dict().items() if k not in ("n_embed", "embed_dim", "num_groups", "beta")}
    params = {"embed_dim": 4, "n_embed": 64, "ddconfig": dd, "lossconfig": {"target": "x"}}
    (directory / "vqgan.yaml").write_text(yaml.safe_dump({"model": {"params": params}}))
    torch.save({"state_dict": VQGAN(cfg).state_dict()}, directory / "vqgan.ckpt")
    return cfg


def test_processor_for_official_folder(tmp_path: Path) -> None:
    folder = tmp_path / "tokenizer"
    with pytest.raises(FileNotFoundError, match=r"missing .*text_tokenizer\.json.*vqgan\.yaml.*vqgan\.ckpt"):
        processor_for_official(folder, libero_norm_stats())
    write_official_folder(folder)
    stats_path = libero_norm_stats().save(tmp_path / "norm_stats.json")
    p = processor_for_official(folder, stats_path, image_size=SIZE)
    assert RynnVLAProcessor.from_official(folder, libero_norm_stats(), image_size=SIZE).layout == p.layout
    assert p.layout.name == "official"
    prompt = p.vla_prompt_from_images("take", np.zeros(8), [frame(0)], [frame(255)])
    assert prompt[0] == 0 and prompt[1:3].tolist() == [16100, 16101] and prompt[-1] == 8710
    s = int(np.flatnonzero(prompt == 15504)[0])
    assert prompt[s + 9] == 16004 and prompt[s + 10 : s + 13].tolist() == [8197, 8805, 8805]
    assert np.all((prompt[s + 13 : s + 15] >= 4) & (prompt[s + 13 : s + 15] <= 8195)) and prompt[s + 15] == 8803
    assert len(prompt) == s + 10 + 2 * (2 * 3 + 4) + 1
    p.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "text_tokenizer.json").is_file()
    again = RynnVLAProcessor.from_pretrained(tmp_path / "saved")
    assert again.layout == p.layout
    assert np.array_equal(again.vla_prompt_from_images("take", np.zeros(8), [frame(0)], [frame(255)]), prompt)
    no_state = NormStats({"action": libero_norm_stats()["action"]})
    stateless = processor_for_official(folder, no_state, image_size=SIZE)
    assert stateless.state_tokenizer is None and 15504 not in stateless.vla_prompt_from_images("take", None, frame(0))
    with pytest.raises(ValueError, match="no state tokenizer"):
        stateless.vla_prompt_from_images("take", np.zeros(8), frame(0))
    with pytest.raises(ValueError, match="no 'joints' entry"):
        RynnVLAProcessor(p.layout, p.text_tokenizer, p.image_tokenizer, no_state, action_key="joints")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing.json"))):
        processor_for_official(folder, tmp_path / "missing.json")
