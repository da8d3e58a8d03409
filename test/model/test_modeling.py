"""The unified model: chunk-mask property, image logits, losses, padding, dropout, and overfitting one sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rynnvla_model.action_tokenizer import BIN_CENTRES
from rynnvla_model.bench import (
    random_codes,
    synthetic_vla_prompt,
    synthetic_vla_sample,
    synthetic_world_model_sample,
)
from rynnvla_model.config import RynnVLAConfig
from rynnvla_model.inference import predict_chunk
from rynnvla_model.modeling import IGNORE_INDEX, RynnVLAForActionWorldModel, image_reference_ids, image_slot_ids

K, A = 3, 3


def make_model(seed: int = 0, **overrides: object) -> RynnVLAForActionWorldModel:
    torch.manual_seed(seed)
    return RynnVLAForActionWorldModel(RynnVLAConfig.tiny(action_dim=A, time_horizon=K, **overrides)).eval()


def vla_sample(seed: int = 0, n_text: int = 6) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    layout = RynnVLAConfig.tiny().layout
    prompt = synthetic_vla_prompt(layout, rng, n_text=n_text, state_dim=3, n_images=2, latent=2)
    bins = rng.integers(0, 256, (K, A))
    ids, labels = synthetic_vla_sample(layout, prompt, bins)
    return torch.tensor(ids), torch.tensor(labels), bins


def wm_sample(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    layout = RynnVLAConfig.tiny().layout
    imgs = [random_codes(layout, 2, rng) for _ in range(2)]
    nxt = [random_codes(layout, 2, rng) for _ in range(2)]
    ids, labels = synthetic_world_model_sample(layout, rng, rng.integers(0, 256, A), imgs, nxt, n_text=6)
    return torch.tensor(ids), torch.tensor(labels)


def block_positions(ids: torch.Tensor, start: int) -> list[int]:
    return torch.nonzero(ids == start).flatten().tolist()


def test_changing_an_earlier_action_never_changes_later_action_logits() -> None:
    model = make_model()
    lay = model.layout
    ids, _, _ = vla_sample()
    starts = block_positions(ids, lay.action_start)
    assert len(starts) == K
    later = slice(starts[2], starts[2] + A + 2)
    changed = ids.clone()
    changed[starts[0] + 1 : starts[0] + 1 + A] = lay.action_value_first + torch.tensor([255, 0, 77])
    changed[starts[1] + 2] = lay.action_value_first + 3
    with torch.no_grad():
        base = model(ids[None]).logits[0]
        other = model(changed[None]).logits[0]
        assert torch.equal(base[later], other[later]), "block 3 must not see blocks 1 and 2"
        assert not torch.allclose(base[starts[0] + 2], other[starts[0] + 2]), "block 1 itself did change"
        # with a plain causal mask the same edit leaks into the later block
        causal_base = model(ids[None], chunk_mask=False).logits[0]
        causal_other = model(changed[None], chunk_mask=False).logits[0]
        assert not torch.allclose(causal_base[later], causal_other[later])
        # an image token is context: changing it changes the later action logits
        image_tok = block_positions(ids, lay.image_start)[1] + 3
        assert lay.image_code_ids[0] <= int(ids[image_tok]) <= lay.image_code_ids[-1]
        img_changed = ids.clone()
        img_changed[image_tok] = lay.image_code_ids[(int(ids[image_tok]) - lay.image_code_ids[0] + 1) % 16]
        assert not torch.allclose(base[later], model(img_changed[None]).logits[0][later])


def test_image_logits_are_allowed_unless_masked() -> None:
    ids, labels = wm_sample()
    with torch.no_grad():
        out = make_model()(ids[None], labels=labels[None])
        image_ids = torch.as_tensor(make_model().layout.image_ids())
        assert torch.isfinite(out.logits[..., image_ids]).all()
        assert out.logits[..., image_ids].abs().max() < 1e3
        assert torch.isfinite(out.ce_loss)
        masked = make_model(mask_image_logits=True)(ids[None]).logits
        assert (masked[..., image_ids] == torch.finfo(masked.dtype).min).all()


def test_loss_parts_match_their_definitions() -> None:
    model = make_model()
    cfg, lay = model.config, model.layout
    vla_ids, vla_labels, bins = vla_sample()
    wm_ids, wm_labels = wm_sample()
    width = max(len(vla_ids), len(wm_ids))
    ids = torch.full((2, width), lay.pad)
    labels = torch.full((2, width), IGNORE_INDEX)
    mask = torch.zeros((2, width), dtype=torch.long)
    for row, (i, lab) in enumerate(((vla_ids, vla_labels), (wm_ids, wm_labels))):
        ids[row, : len(i)], labels[row, : len(i)], mask[row, : len(i)] = i, lab, 1
    with torch.no_grad():
        out = model(ids, labels=labels, attention_mask=mask)
    assert out.vla_rows.tolist() == [0], "only the sample with >1 action start is a VLA chunk"
    logits = out.logits[:, :-1].reshape(-1, cfg.vocab_size).float()
    target = labels[:, 1:].reshape(-1)
    keep = target != IGNORE_INDEX
    weights = torch.ones(cfg.vocab_size)
    lo, hi = lay.image_loss_ids
    weights[lo : hi + 1] = 0.04
    per_token = F.cross_entropy(logits[keep], target[keep], reduction="none")
    ce = (per_token * weights[target[keep]]).sum() / weights[target[keep]].sum()
    torch.testing.assert_close(out.ce_loss, ce)
    z = torch.logsumexp(logits[keep], dim=-1).pow(2).mean()
    torch.testing.assert_close(out.z_loss, z)
    want = torch.tensor(BIN_CENTRES[np.clip(bins, 0, 254)], dtype=torch.float32)
    torch.testing.assert_close(out.action_targets[0], want)
    torch.testing.assert_close(out.l1_loss, (out.actions[0] - want).abs().mean())
    torch.testing.assert_close(out.loss, ce + 1e-5 * z + 10.0 * out.l1_loss)
    with torch.no_grad():
        only_ce = model(ids, labels=labels, attention_mask=mask, l1_loss=False, z_loss=False)
        wm_only = model(wm_ids[None], labels=wm_labels[None])
    assert only_ce.l1_loss is None and only_ce.z_loss is None
    torch.testing.assert_close(only_ce.loss, ce)
    assert wm_only.l1_loss is None and wm_only.vla_rows.numel() == 0


def test_wrong_number_of_labelled_blocks_is_an_error() -> None:
    model = make_model()
    ids, labels, _ = vla_sample()
    labels[block_positions(ids, model.layout.action_start)[1]] = IGNORE_INDEX
    with pytest.raises(ValueError, match="expected time_horizon=3"):
        model(ids[None], labels=labels[None])
    with pytest.raises(ValueError, match="labels"):
        model(ids[None], labels=labels[None, :-1])


def test_left_padding_gives_the_unpadded_logits() -> None:
    model = make_model()
    ids, _, _ = vla_sample()
    pad = 5
    padded = torch.cat([torch.full((pad,), model.layout.pad), ids])[None]
    mask = torch.cat([torch.zeros(pad), torch.ones(len(ids))]).long()[None]
    with torch.no_grad():
        alone = model(ids[None]).logits[0]
        batched = model(padded, attention_mask=mask).logits[0, pad:]
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


def test_absolute_positions_make_the_place_of_a_token_matter() -> None:
    ids, _, _ = vla_sample()
    shifted = torch.arange(len(ids))[None] + 7
    with torch.no_grad():
        rotary = make_model()
        torch.testing.assert_close(rotary(ids[None], position_ids=shifted).logits, rotary(ids[None]).logits)
        absolute = make_model(absolute_positions=len(ids) + 7)
        assert not torch.allclose(absolute(ids[None], position_ids=shifted).logits, absolute(ids[None]).logits)
        assert absolute.model.embed_positions.weight.shape == (len(ids) + 7, absolute.config.hidden_size)
        assert rotary.model.embed_positions is None  # the release's parameter set


def test_image_slot_ids_count_places_inside_image_blocks() -> None:
    lay = make_model().layout
    code = lay.image_ids()[0]
    block = [lay.image_start, lay.grid_token(2), lay.grid_token(2), code, code, lay.row_end, lay.image_end]
    ids = torch.tensor([[lay.bos, *block, lay.turn_sep, *block, *block[:4]]])
    expected = [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4]
    assert image_slot_ids(ids, lay).tolist() == [expected]


def test_image_reference_ids_point_at_the_same_place_one_view_cycle_back() -> None:
    lay = make_model().layout
    code = lay.image_ids()
    head = [lay.image_start, lay.grid_token(2), lay.grid_token(2)]
    blocks = [[*head, code[i], code[i + 1], lay.row_end, lay.image_end] for i in (0, 4, 8)]
    ids = torch.tensor([[lay.bos, *blocks[0], *blocks[1], lay.turn_sep, *blocks[2]]])
    refs = image_reference_ids(ids, lay, views=2)[0].tolist()
    third = 1 + 2 * 7 + 1  # where the third block starts
    assert refs[:third] == [lay.pad] * third  # the first two blocks have no earlier image of their view
    # each token of the third block sees the first block's token at the place it predicts (the next one)
    assert refs[third:] == [*blocks[0][1:], lay.pad]
    assert image_reference_ids(ids, lay, views=1)[0, third + 2].item() == blocks[1][3]


def test_image_references_add_the_referenced_token_embedding() -> None:
    ids, labels = wm_sample()
    model = make_model(image_reference_views=2)
    refs = image_reference_ids(ids[None], model.layout, 2)
    assert int((refs != model.layout.pad).sum()) == 2 * 9  # two predicted 2x2 blocks of 10 tokens; image_end has none
    with torch.no_grad():
        before = model(ids[None]).logits
        model.model.embed_references.weight.zero_()
        after = model(ids[None]).logits
    prompt = int((labels == IGNORE_INDEX).sum())
    torch.testing.assert_close(after[:, :prompt], before[:, :prompt])  # the input frames reference nothing
    assert not torch.allclose(after[:, prompt:], before[:, prompt:])
    assert make_model().model.embed_references is None  # the release's parameter set


def test_decoder_dropout_is_active_in_training_only() -> None:
    ids, _, _ = vla_sample()
    model = make_model(dropout=0.3)
    assert all(layer.dropout.p == 0.3 for layer in model.model.layers)
    with torch.no_grad():
        assert torch.equal(model(ids[None]).logits, model(ids[None]).logits)
        model.train()
        assert not torch.equal(model(ids[None]).logits, model(ids[None]).logits)


def _train(model: RynnVLAForActionWorldModel, ids: torch.Tensor, labels: torch.Tensor, until, max_steps: int):
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for step in range(max_steps):
        out = model(ids[None], labels=labels[None])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if until(out):
            return step, out
    return max_steps, out


def test_overfits_one_vla_sample() -> None:
    model = make_model(hidden_size=64, action_head_dropout=0.0)
    ids, labels, bins = vla_sample()
    steps, out = _train(model, ids, labels, lambda o: o.l1_loss < 0.01 and o.ce_loss < 0.02, 400)
    assert steps < 400, f"no convergence: L1 {out.l1_loss.item():.4f}, CE {out.ce_loss.item():.4f}"
    model.eval()
    prompt = ids[: block_positions(ids, model.layout.action_start)[0]]
    discrete = predict_chunk(model, [prompt], mode="discrete")
    assert torch.equal(discrete.token_ids[0], torch.tensor(bins) + model.layout.action_value_first)
    continuous = predict_chunk(model, [prompt], mode="continuous").actions[0]
    target = torch.tensor(BIN_CENTRES[np.clip(bins, 0, 254)], dtype=torch.float32)
    assert (continuous - target).abs().max() < 0.05


def test_overfits_one_world_model_sample() -> None:
    model = make_model(hidden_size=64)
    ids, labels = wm_sample()
    steps, out = _train(model, ids, labels, lambda o: o.ce_loss < 0.01, 400)
    assert steps < 400, f"no convergence: CE {out.ce_loss.item():.4f}"
    assert out.l1_loss is None
