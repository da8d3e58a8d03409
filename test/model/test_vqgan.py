"""VQGAN: Chameleon parameter names, agreement with transformers' encoder, checkpoint loading and training losses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rynnvla_model.vqgan import VQGAN, VQGANConfig, load_vqgan


def tiny_with_attention() -> VQGANConfig:
    """Small, but with 32 GroupNorm groups (Chameleon's, implied by vqgan.yaml) and one attention resolution."""
    return VQGANConfig(
        ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), z_channels=8, embed_dim=4, n_embed=32,
        resolution=32,
    )  # fmt: skip


def chameleon_yaml(cfg: VQGANConfig) -> dict:
    """A file shaped like Chameleon's vqgan.yaml (taming-transformers layout, with the loss config)."""
    dd = {"double_z": False, "z_channels": cfg.z_channels, "resolution": cfg.resolution, "in_channels": 3, "out_ch": 3,
          "ch": cfg.ch, "ch_mult": list(cfg.ch_mult), "num_res_blocks": cfg.num_res_blocks,
          "attn_resolutions": list(cfg.attn_resolutions), "dropout": 0.0}  # fmt: skip
    params = {"embed_dim": cfg.embed_dim, "n_embed": cfg.n_embed, "ddconfig": dd, "ckpt_path": "unused",
              "lossconfig": {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator"}}  # fmt: skip
    return {"model": {"target": "taming.models.vqgan.VQModel", "params": params}}


def test_state_dict_follows_chameleon_names() -> None:
    keys = dict(VQGAN(tiny_with_attention()).state_dict())
    for name in [
        "encoder.conv_in.weight",
        "encoder.down.0.block.0.norm1.weight",
        "encoder.down.1.block.0.nin_shortcut.weight",
        "encoder.down.2.attn.0.proj_out.weight",
        "encoder.down.0.downsample.conv.weight",
        "encoder.mid.block_1.conv2.bias",
        "encoder.mid.attn_1.q.weight",
        "encoder.norm_out.bias",
        "encoder.conv_out.weight",
        "quant_conv.weight",
        "quantize.embedding.weight",
        "post_quant_conv.bias",
        "decoder.conv_in.weight",
        "decoder.mid.block_2.norm2.weight",
        "decoder.up.0.block.1.conv1.weight",
        "decoder.up.2.block.0.conv2.weight",
        "decoder.up.2.attn.1.k.weight",
        "decoder.up.1.upsample.conv.weight",
        "decoder.norm_out.weight",
        "decoder.conv_out.bias",
    ]:
        assert name in keys, name
    # no downsample after the last level, no upsample at level 0, no temb/conv_shortcut layers
    assert not any(k.startswith(("encoder.down.2.downsample", "decoder.up.0.upsample")) for k in keys)
    assert not any(k.startswith(("encoder.down.1.attn", "decoder.up.1.attn")) for k in keys)  # attention at 8 px only
    assert not any("temb" in k or "conv_shortcut" in k for k in keys)
    assert keys["decoder.up.0.block.1.conv1.weight"].shape == (32, 32, 3, 3)  # num_res_blocks + 1 blocks per level
    assert keys["quantize.embedding.weight"].shape == (32, 4)


def test_chameleon_preset_shapes() -> None:
    cfg = VQGANConfig.chameleon()
    assert (cfg.n_embed, cfg.embed_dim, cfg.z_channels, cfg.downsample_factor) == (8192, 256, 256, 16)
    with torch.device("meta"):
        state = VQGAN(cfg).state_dict()
    assert state["quantize.embedding.weight"].shape == (8192, 256)
    assert state["encoder.down.4.block.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert state["decoder.up.4.block.2.conv2.weight"].shape == (512, 512, 3, 3)
    assert state["decoder.conv_out.weight"].shape == (3, 128, 3, 3)
    assert "encoder.down.3.downsample.conv.weight" in state and "encoder.down.4.downsample.conv.weight" not in state


def test_encoder_matches_transformers_chameleon_vqvae() -> None:
    from transformers import ChameleonVQVAEConfig
    from transformers.models.chameleon.modeling_chameleon import ChameleonVQVAE

    cfg = tiny_with_attention()
    torch.manual_seed(0)
    ours = VQGAN(cfg).eval()
    theirs = ChameleonVQVAE(
        ChameleonVQVAEConfig(
            embed_dim=4,
            num_embeddings=32,
            latent_channels=8,
            resolution=32,
            base_channels=32,
            channel_multiplier=[1, 2, 2],
            num_res_blocks=1,
            attn_resolutions=[8],
        )
    ).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0, 0.2)
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("decoder.") for k in missing)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = theirs.encode(x).image_tokens.reshape(2, -1)
        got = ours.encode(x).reshape(2, -1)
    assert torch.equal(ref, got) and got.unique().numel() > 1


def test_lightning_checkpoint_loads_and_decodes(tmp_path: Path) -> None:
    cfg = tiny_with_attention()
    torch.manual_seed(1)
    model = VQGAN(cfg).eval()
    state = dict(model.state_dict())
    state["loss.discriminator.main.0.weight"] = torch.zeros(2, 3, 4, 4)
    state["loss.perceptual_loss.net.slice1.0.weight"] = torch.zeros(1)
    torch.save({"state_dict": state, "global_step": 7}, tmp_path / "vqgan.ckpt")
    (tmp_path / "vqgan.yaml").write_text(yaml.safe_dump(chameleon_yaml(cfg)))
    loaded = load_vqgan(tmp_path)
    assert loaded.config == cfg and not loaded.training
    codes = torch.randint(0, 32, (2, 8, 8))
    with torch.no_grad():
        out = loaded.decode(codes)
        assert out.shape == (2, 3, 32, 32)
        assert torch.equal(out, model.decode(codes))
    also = load_vqgan(tmp_path / "vqgan.ckpt", config=cfg)
    assert torch.equal(also.quantize.embedding.weight, model.quantize.embedding.weight)


def test_save_load_safetensors_round_trip(tmp_path: Path) -> None:
    cfg = VQGANConfig.tiny(n_embed=16, downsample_factor=4)
    model = VQGAN(cfg).eval()
    model.save(tmp_path / "vq")
    assert (tmp_path / "vq" / "config.json").is_file() and (tmp_path / "vq" / "model.safetensors").is_file()
    back = load_vqgan(tmp_path / "vq")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        codes = model.encode(x)
        assert codes.shape == (1, 4, 4) and codes.dtype == torch.int64
        assert torch.equal(back.encode(x), codes)
        assert back.decode(codes).shape == (1, 3, 16, 16)
    assert torch.equal(load_vqgan(tmp_path / "vq" / "model.safetensors").decoder.conv_out.weight,
                       model.decoder.conv_out.weight)  # fmt: skip


def test_missing_corrupt_and_mismatched_files(tmp_path: Path) -> None:
    cfg = VQGANConfig.tiny(n_embed=16, downsample_factor=4)
    with pytest.raises(FileNotFoundError, match=r"vqgan\.ckpt"):
        load_vqgan(tmp_path)
    (tmp_path / "vqgan.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(FileNotFoundError, match=r"vqgan\.yaml"):
        load_vqgan(tmp_path / "vqgan.ckpt")
    with pytest.raises(ValueError, match="could not be loaded as a weights-only torch checkpoint"):
        load_vqgan(tmp_path / "vqgan.ckpt", config=cfg)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_vqgan(tmp_path / "bad.safetensors", config=cfg)
    state = dict(VQGAN(cfg).state_dict())
    del state["decoder.conv_out.bias"]
    state["encoder.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "partial.ckpt")
    with pytest.raises(ValueError, match=r"missing keys \[decoder.conv_out.bias\].*unexpected keys \[encoder.extra"):
        load_vqgan(tmp_path / "partial.ckpt", config=cfg)
    torch.save({"state_dict": dict(VQGAN(cfg).state_dict())}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="shape mismatches"):
        load_vqgan(tmp_path / "other.ckpt", config=VQGANConfig.tiny(n_embed=32, downsample_factor=4))


def test_yaml_config_and_validation(tmp_path: Path) -> None:
    cfg = tiny_with_attention()
    assert VQGANConfig.from_yaml_dict(chameleon_yaml(cfg)) == cfg
    assert VQGANConfig.from_yaml_dict(chameleon_yaml(cfg)["model"]["params"]) == cfg
    assert VQGANConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="ddconfig"):
        VQGANConfig.from_yaml_dict({"model": {"params": {"n_embed": 3}}})
    tanh = chameleon_yaml(cfg)
    tanh["model"]["params"]["ddconfig"]["tanh_out"] = True
    with pytest.raises(ValueError, match="unsupported VQGAN ddconfig settings"):
        VQGANConfig.from_yaml_dict(tanh)
    with pytest.raises(ValueError, match="unknown VQGAN config keys"):
        VQGANConfig.from_dict({"chx": 3})
    with pytest.raises(ValueError, match="num_groups"):
        VQGANConfig(ch=12, num_groups=8)
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        VQGANConfig.from_yaml(tmp_path / "nope.yaml")
    model = VQGAN(VQGANConfig.tiny(n_embed=16, downsample_factor=4))
    with pytest.raises(ValueError, match="multiples of 4"):
        model.encode(torch.zeros(1, 3, 10, 12))
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\)"):
        model.encode(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"codes must lie in 0\.\.15"):
        model.decode(torch.full((1, 2, 2), 16))


def test_local_codes_depend_on_their_patch_only_and_round_trip(tmp_path: Path) -> None:
    """A local VQGAN's latent of a patch stays bit-identical when any other patch changes; GroupNorm's image-wide
    statistics, the mid-block attention and the 3x3 convs make the default one's change far away."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    moved = x.clone()
    moved[:, :, :4, :4] = -x[:, :, :4, :4]  # the top-left token's 4x4 patch
    for local in (False, True):
        cfg = dataclasses.replace(VQGANConfig.tiny(n_embed=16, downsample_factor=4), local=local)
        model = VQGAN(cfg).eval()
        with torch.no_grad():
            z, z_moved = (model.quant_conv(model.encoder(im))[0] for im in (x, moved))
        changed = (z != z_moved).any(dim=0)
        assert bool(changed[0, 0]) and bool(changed[-1, -1]) != local
        assert int(changed.sum()) == 1 if local else int(changed.sum()) > 100
    model.save(tmp_path / "local")
    back = load_vqgan(tmp_path / "local")
    assert back.config.local and "encoder.mid.attn_1.q.weight" not in back.state_dict()
    with torch.no_grad():
        assert torch.equal(back.encode(x), model.encode(x))
    with pytest.raises(ValueError, match="a local VQGAN has no attention"):
        VQGANConfig(ch=8, num_groups=4, attn_resolutions=(16,), local=True)


def test_straight_through_training_losses() -> None:
    torch.manual_seed(2)
    model = VQGAN(VQGANConfig.tiny(n_embed=16, downsample_factor=4))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    recon, q = model(x)
    assert recon.shape == x.shape and q.codes.shape == (2, 4, 4)
    assert q.codebook_loss.item() > 0 and np.isclose(q.codebook_loss.item(), q.commitment_loss.item())
    (torch.nn.functional.mse_loss(recon, x) + q.loss).backward()
    assert model.encoder.conv_in.weight.grad is not None and model.encoder.conv_in.weight.grad.abs().sum() > 0
    assert model.quantize.embedding.weight.grad.abs().sum() > 0
    # the quantised latents equal the chosen codebook rows
    with torch.no_grad():
        assert torch.allclose(q.z_q, model.quantize.lookup(q.codes), atol=1e-6)
