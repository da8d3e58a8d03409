"""Attention masks: the action-chunk rule, causal world-model masks, padding and the KV-cache variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rynnvla_model.masks import (
    action_blocks,
    allowed_rows,
    build_attention_mask,
    last_image_end,
    parallel_chunk_step_mask,
    step_attention_mask,
)
from rynnvla_model.vocab import VocabLayout

LAY = VocabLayout.compact(codebook_size=16)
A = 2


def image(n: int = 2) -> list[int]:
    codes = [LAY.image_code_ids[i % 16] for i in range(n)]
    return [LAY.image_start, LAY.grid_token(2), LAY.grid_token(2), *codes, LAY.row_end, LAY.image_end]


def action(v: int = 0) -> list[int]:
    return [LAY.action_start, *[LAY.action_value_first + v + i for i in range(A)], LAY.action_end]


def vla_sequence(k: int = 3) -> list[int]:
    prompt = [LAY.bos, LAY.text_byte_first + 5, *image(), *image(), LAY.turn_sep]
    return prompt + [t for i in range(k) for t in action(i)] + [LAY.turn_sep]


def reference_allowed(ids: list[int], valid: list[bool] | None = None) -> np.ndarray:
    """The rule written out with explicit loops, straight from the release's description."""
    n = len(ids)
    valid = valid or [True] * n
    allowed = np.tril(np.ones((n, n), dtype=bool))
    starts = [i for i, t in enumerate(ids) if t == LAY.action_start]
    ends = [i for i, t in enumerate(ids) if t == LAY.action_end]
    if len(starts) > len(ends):
        ends.append(n - 1)
    blocks = list(zip(starts, ends, strict=False))
    img_starts = [i for i, t in enumerate(ids) if t == LAY.image_start]
    img_ends = [i for i, t in enumerate(ids) if t == LAY.image_end]
    last_img = n - 1 if len(img_starts) > len(img_ends) else (img_ends[-1] if img_ends else -1)
    for s, e in blocks:
        if s > last_img:
            for ps, pe in blocks:
                if pe < s:
                    allowed[s : e + 1, ps : pe + 1] = False
    for j in range(n):
        if not valid[j]:
            allowed[:, j] = False
            allowed[j, j] = True
    return allowed


def test_chunk_rows_never_see_earlier_action_blocks() -> None:
    ids = vla_sequence(3)
    allowed = allowed_rows(torch.tensor([ids]), LAY)[0].numpy()
    blocks = action_blocks(np.array(ids), LAY)
    assert len(blocks) == 3
    prompt_end = blocks[0][0]
    for k, (s, e) in enumerate(blocks):
        rows = allowed[s : e + 1]
        assert rows[:, :prompt_end].all(axis=1).all(), "every chunk token sees the whole prompt"
        for ps, pe in blocks[:k]:
            assert not rows[:, ps : pe + 1].any(), f"block {k} must not see block ({ps}, {pe}), start/end included"
        own = rows[:, s : e + 1]
        assert np.array_equal(own, np.tril(np.ones_like(own))), "causal inside the own block"
    final_sep = len(ids) - 1
    assert allowed[final_sep, : final_sep + 1].all(), "tokens outside the blocks stay causal"
    assert np.array_equal(allowed, reference_allowed(ids))


def test_world_model_sequences_and_plain_causal() -> None:
    wm = [LAY.bos, *image(), *image(), *action(4), LAY.turn_sep, *image(), *image(), LAY.turn_sep]
    causal = np.tril(np.ones((len(wm), len(wm)), dtype=bool))
    assert np.array_equal(allowed_rows(torch.tensor(wm), LAY)[0].numpy(), causal)
    vla = vla_sequence(3)
    plain = allowed_rows(torch.tensor(vla), LAY, chunk=False)[0].numpy()
    assert np.array_equal(plain, np.tril(np.ones((len(vla), len(vla)), dtype=bool)))


def test_unclosed_blocks() -> None:
    ids = [*vla_sequence(2)[:-1], LAY.action_start, LAY.action_value_first]  # third block still open
    allowed = allowed_rows(torch.tensor(ids), LAY)[0].numpy()
    s = len(ids) - 2
    assert action_blocks(np.array(ids), LAY)[-1] == (s, len(ids) - 1)
    first = action_blocks(np.array(ids), LAY)[0]
    assert not allowed[s:, first[0] : first[1] + 1].any()
    assert np.array_equal(allowed, reference_allowed(ids))
    # an image block still open after the actions: the actions are not after the last image -> causal
    open_image = [*vla_sequence(2)[:-1], LAY.image_start, LAY.grid_token(2)]
    assert last_image_end(np.array(open_image), LAY) == len(open_image) - 1
    n = len(open_image)
    assert np.array_equal(allowed_rows(torch.tensor(open_image), LAY)[0].numpy(), np.tril(np.ones((n, n), bool)))


def test_random_sequences_match_the_reference() -> None:
    rng = np.random.default_rng(0)
    pieces = [image, action, lambda: [LAY.text_byte_first + 1], lambda: [LAY.turn_sep]]
    for _ in range(30):
        ids = [LAY.bos]
        for _ in range(rng.integers(1, 9)):
            ids += pieces[rng.integers(0, len(pieces))]()
        cut = int(rng.integers(len(ids) // 2, len(ids) + 1))
        ids = ids[:cut]
        valid = list(rng.random(len(ids)) > 0.1)
        got = allowed_rows(torch.tensor([ids]), LAY, torch.tensor([valid]))[0].numpy()
        assert np.array_equal(got, reference_allowed(ids, valid)), ids


def test_float_mask_padding_and_shapes() -> None:
    a, b = vla_sequence(2), vla_sequence(3)
    width = len(b)
    ids = torch.full((2, width), LAY.pad)
    valid = torch.zeros((2, width), dtype=torch.bool)
    ids[0, width - len(a) :] = torch.tensor(a)  # left padded
    valid[0, width - len(a) :] = True
    ids[1] = torch.tensor(b)
    valid[1] = True
    mask = build_attention_mask(ids, LAY, valid, dtype=torch.bfloat16)
    assert mask.shape == (2, 1, width, width) and mask.dtype == torch.bfloat16
    assert set(mask.unique().tolist()) <= {0.0, float("-inf")}
    finite = torch.isfinite(mask[:, 0])
    assert finite.any(dim=-1).all(), "no row may be entirely masked"
    pad = width - len(a)
    assert not finite[0, pad:, :pad].any(), "real tokens never attend to padding"
    for i in range(pad):
        assert finite[0, i].nonzero().flatten().tolist() == [i], "a padded row attends only to itself"
    shifted = allowed_rows(torch.tensor([a]), LAY)[0]
    assert torch.equal(finite[0, pad:, pad:], shifted), "left padding does not change the real rows"


def test_step_rows_equal_the_full_mask() -> None:
    ids = torch.tensor([vla_sequence(3)])
    full = build_attention_mask(ids, LAY)
    for n_new in (1, 3, 7):
        rows = step_attention_mask(ids, LAY, n_new)
        assert rows.shape == (1, 1, n_new, ids.shape[1])
        assert torch.equal(rows, full[:, :, -n_new:])
    with pytest.raises(ValueError, match="n_new"):
        step_attention_mask(ids, LAY, 0)


def test_parallel_step_mask_matches_block_visibility() -> None:
    valid = torch.tensor([[False, True, True, True]])
    k_blocks, step = 3, 2
    mask = parallel_chunk_step_mask(valid, k_blocks, step)
    assert mask.shape == (1, 1, 3, 4 + 3 * k_blocks)
    ok = torch.isfinite(mask[0, 0])
    assert torch.equal(ok[:, :4], valid.expand(3, -1))
    for k in range(k_blocks):
        seen = ok[k, 4:].nonzero().flatten().tolist()
        assert seen == [k + s * k_blocks for s in range(step + 1)], "a block sees only its own generated tokens"


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="integer tensor"):
        allowed_rows(torch.zeros((1, 4)), LAY)
    with pytest.raises(ValueError, match="does not match"):
        allowed_rows(torch.zeros((1, 4), dtype=torch.long), LAY, torch.ones((1, 3)))
    with pytest.raises(ValueError, match="q_start"):
        allowed_rows(torch.zeros((1, 4), dtype=torch.long), LAY, q_start=4)
