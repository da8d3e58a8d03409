"""Inference: action chunks (continuous head, sequential or parallel discrete decoding) and world-model frames.

Prompts may be given as a list of 1-D id sequences of different lengths, or as a (B, L) tensor/array with an
optional 0/1 ``attention_mask`` (left or right padding, or any mix): every batch is re-packed to left padding and
each row's positions start at 0 on its first real token, so a row decodes exactly as it would alone.

* ``mode="continuous"``: one backbone forward over the prompt, then the action head on the states of the prompt
  (everything before the action start the release appends) -> (B, K, A) normalised actions.
* ``mode="discrete"``, sequential: greedy decoding with a KV cache in the release's layout
  ``[prompt] K x [action_start, A values, action_end]`` under the action-chunk mask; block delimiters are forced,
  values are the argmax over the 256 action-value ids. About K*A forward steps.
* ``mode="discrete"``, parallel: because of the chunk mask, block k sees only the prompt and its own tokens. All K
  blocks are therefore decoded together: each step appends one token of every block, with block k's rows masked
  from the other blocks and positions set as in the sequential layout. 1 + A forward steps; same tokens.
* ``predict_next_frames``: greedy image generation with a KV cache under the image-block grammar
  ``[image_start, grid(h), grid(w), h x (w codes, row_end), image_end]``, causal mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from transformers.cache_utils import DynamicCache

from rynnvla_model.masks import build_attention_mask, chunk_block_ids, parallel_chunk_step_mask, step_attention_mask
from rynnvla_model.modeling import RynnVLAForActionWorldModel, padding_positions
from rynnvla_model.vocab import NUM_BINS

MODES = ("continuous", "discrete")


@dataclass
class ChunkPrediction:
    """An action chunk per batch row."""

    actions: torch.Tensor
    """(B, K, A) float32 normalised actions in [-1, 1] (continuous: the head's unbounded output)."""
    token_ids: torch.Tensor | None
    """(B, K, A) action-value ids (discrete modes), else None."""
    forward_passes: int


@dataclass
class FramePrediction:
    """Generated images per batch row."""

    codes: list[list[np.ndarray]]
    """codes[b][i]: (h, w) int64 VQ code grid of image i of row b."""
    token_ids: torch.Tensor
    """(B, n_images * block_len) generated ids, complete image blocks."""
    forward_passes: int


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def prepare_prompts(
    prompt_ids: torch.Tensor | np.ndarray | Sequence[Sequence[int]],
    attention_mask: torch.Tensor | np.ndarray | None,
    pad_id: int,
    vocab_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids (B, L) and their 0/1 validity (bool) on ``device``."""
    if isinstance(prompt_ids, (torch.Tensor, np.ndarray)) and np.ndim(prompt_ids) in (1, 2):
        ids = torch.as_tensor(np.asarray(prompt_ids) if isinstance(prompt_ids, np.ndarray) else prompt_ids)
        ids = ids.reshape(1, -1) if ids.dim() == 1 else ids
        if attention_mask is None:
            keep = torch.ones(ids.shape, dtype=torch.bool)
        else:
            keep = torch.as_tensor(attention_mask).reshape(ids.shape).bool()
        rows = [ids[b][keep[b].to(ids.device)].cpu() for b in range(ids.shape[0])]
    else:
        if attention_mask is not None:
            raise ValueError("attention_mask is only used with a (B, L) prompt tensor, not with a list of sequences")
        rows = [torch.as_tensor(np.asarray(r)).reshape(-1) for r in prompt_ids]
    if not rows:
        raise ValueError("the prompt batch is empty")
    for b, row in enumerate(rows):
        if row.numel() == 0:
            raise ValueError(f"prompt {b} has no tokens")
        if row.dtype.is_floating_point or row.dtype == torch.bool:
            raise ValueError(f"prompt {b} must hold integer token ids, got {row.dtype}")
        if int(row.min()) < 0 or int(row.max()) >= vocab_size:
            raise ValueError(f"prompt {b} has ids outside [0, {vocab_size})")
    width = max(r.numel() for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    for b, row in enumerate(rows):
        out[b, width - row.numel() :] = row.long()
        valid[b, width - row.numel() :] = True
    return out.to(device), valid.to(device)


def _prefill_mask(
    model: RynnVLAForActionWorldModel, ids: torch.Tensor, valid: torch.Tensor, chunk: bool
) -> torch.Tensor | None:
    """A 4-D mask for a prefill, or None when it is plain causal without padding (fast SDPA / flash path)."""
    if valid.all() and (not chunk or not bool(chunk_block_ids(ids, model.layout)[1].any())):
        return None
    return build_attention_mask(ids, model.layout, valid, dtype=model.dtype, chunk=chunk)


def _run(
    model: RynnVLAForActionWorldModel,
    ids: torch.Tensor,
    mask: torch.Tensor | None,
    positions: torch.Tensor,
    cache: DynamicCache | None,
    full_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Backbone forward (with the cache when given); returns final-norm hidden states."""
    custom = mask is not None and mask.dim() == 4
    with model.custom_mask_attention() if custom else nullcontext():
        return model.model(ids, mask, positions, cache, cache is not None, full_ids)[0]


def _argmax_over(model: RynnVLAForActionWorldModel, hidden: torch.Tensor, allowed_ids: torch.Tensor) -> torch.Tensor:
    """Greedy choice among ``allowed_ids`` from the logits of ``hidden`` (..., hidden) -> ids (...)."""
    logits = model.compute_logits(hidden)[..., allowed_ids]
    return allowed_ids[logits.float().argmax(dim=-1)]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


@torch.inference_mode()
def predict_chunk(
    model: RynnVLAForActionWorldModel,
    prompt_ids: torch.Tensor | np.ndarray | Sequence[Sequence[int]],
    mode: str = "continuous",
    parallel: bool = True,
    attention_mask: torch.Tensor | np.ndarray | None = None,
) -> ChunkPrediction:
    """Predict one action chunk per prompt (prompts end with the turn separator, as the VLA prompt does)."""
    _check_mode(mode)
    layout = model.layout
    ids, valid = prepare_prompts(prompt_ids, attention_mask, layout.pad, model.config.vocab_size, _device(model))
    if mode == "continuous":
        hidden = _run(model, ids, _prefill_mask(model, ids, valid, chunk=True), padding_positions(valid), None)
        actions = model.predict_actions(hidden, model.context_mask(ids, valid))
        return ChunkPrediction(actions.float(), None, 1)
    if parallel:
        return _discrete_parallel(model, ids, valid)
    return _discrete_sequential(model, ids, valid)


def _value_ids(model: RynnVLAForActionWorldModel, device: torch.device) -> torch.Tensor:
    return torch.arange(model.layout.action_value_first, model.layout.action_value_first + NUM_BINS, device=device)


def _to_actions(model: RynnVLAForActionWorldModel, token_ids: torch.Tensor) -> torch.Tensor:
    from rynnvla_model.action_tokenizer import bin_centre_of_ids

    return bin_centre_of_ids(token_ids, model.layout.action_value_first).float()


def _discrete_sequential(model: RynnVLAForActionWorldModel, ids: torch.Tensor, valid: torch.Tensor) -> ChunkPrediction:
    lay = model.layout
    k_steps, a_dim = model.time_horizon, model.action_dim
    batch, device = ids.shape[0], ids.device
    values = _value_ids(model, device)
    cache = DynamicCache(config=model.config)
    seq, seq_valid = ids, valid
    next_pos = valid.sum(dim=1)  # position of the next token per row
    pending = torch.full((batch, 1), lay.action_start, dtype=torch.long, device=device)
    chosen = torch.empty((batch, k_steps, a_dim), dtype=torch.long, device=device)
    passes = 0
    for k in range(k_steps):
        for j in range(a_dim):
            n_new = pending.shape[1]
            seq = torch.cat([seq, pending], dim=1)
            seq_valid = torch.cat([seq_valid, torch.ones_like(pending, dtype=torch.bool)], dim=1)
            if passes == 0:  # prefill: prompt + first action start
                mask = build_attention_mask(seq, lay, seq_valid, dtype=model.dtype)
                positions = padding_positions(seq_valid)
                hidden = _run(model, seq, mask, positions, cache)
            else:
                mask = step_attention_mask(seq, lay, n_new, seq_valid, dtype=model.dtype)
                positions = next_pos[:, None] + torch.arange(n_new, device=device)[None, :]
                hidden = _run(model, pending, mask, positions, cache)
            next_pos = next_pos + n_new
            passes += 1
            token = _argmax_over(model, hidden[:, -1], values)
            chosen[:, k, j] = token
            pending = token[:, None]
        closing = [lay.action_end] + ([lay.action_start] if k < k_steps - 1 else [])
        pending = torch.cat([pending, torch.tensor(closing, device=device).expand(batch, -1)], dim=1)
    return ChunkPrediction(_to_actions(model, chosen), chosen, passes)


def _discrete_parallel(model: RynnVLAForActionWorldModel, ids: torch.Tensor, valid: torch.Tensor) -> ChunkPrediction:
    lay = model.layout
    k_steps, a_dim = model.time_horizon, model.action_dim
    batch, device = ids.shape[0], ids.device
    values = _value_ids(model, device)
    cache = DynamicCache(config=model.config)
    _run(model, ids, _prefill_mask(model, ids, valid, chunk=True), padding_positions(valid), cache)
    block_len = a_dim + 2
    base = valid.sum(dim=1)[:, None] + block_len * torch.arange(k_steps, device=device)[None, :]  # (B, K)
    tokens = torch.full((batch, k_steps), lay.action_start, dtype=torch.long, device=device)
    chosen = torch.empty((batch, k_steps, a_dim), dtype=torch.long, device=device)
    for j in range(a_dim):
        mask = parallel_chunk_step_mask(valid, k_steps, j, dtype=model.dtype)
        hidden = _run(model, tokens, mask, base + j, cache)
        tokens = _argmax_over(model, hidden, values)
        chosen[:, :, j] = tokens
    return ChunkPrediction(_to_actions(model, chosen), chosen, 1 + a_dim)


@torch.inference_mode()
def predict_next_frames(
    model: RynnVLAForActionWorldModel,
    prompt_ids: torch.Tensor | np.ndarray | Sequence[Sequence[int]],
    image_latent_hw: tuple[int, int],
    n_images: int = 2,
    attention_mask: torch.Tensor | np.ndarray | None = None,
) -> FramePrediction:
    """Generate ``n_images`` image blocks of an (h, w) latent grid after each prompt (greedy, KV cache)."""
    lay = model.layout
    h, w = (int(v) for v in image_latent_hw)
    if h < 1 or w < 1 or n_images < 1:
        raise ValueError(f"need a positive latent grid and n_images >= 1, got {(h, w)} and {n_images}")
    header = [lay.image_start, lay.grid_token(h), lay.grid_token(w)]
    ids, valid = prepare_prompts(prompt_ids, attention_mask, lay.pad, model.config.vocab_size, _device(model))
    batch, device = ids.shape[0], ids.device
    code_ids = torch.as_tensor(lay.image_ids(), device=device)
    to_code = torch.full((model.config.vocab_size,), -1, dtype=torch.long, device=device)
    to_code[code_ids] = torch.arange(code_ids.numel(), device=device)
    cache = DynamicCache(config=model.config)
    seq_valid = valid
    next_pos = valid.sum(dim=1)
    pending = torch.tensor(header, device=device).expand(batch, -1)
    seq = ids  # every id fed so far (the prompt, then the generated blocks)
    codes = torch.empty((batch, n_images, h, w), dtype=torch.long, device=device)
    passes = 0
    for img in range(n_images):
        for r in range(h):
            for c in range(w):
                n_new = pending.shape[1]
                seq = torch.cat([seq, pending], dim=1)
                seq_valid = torch.cat([seq_valid, torch.ones_like(pending, dtype=torch.bool)], dim=1)
                if passes == 0:
                    hidden = _run(
                        model, seq, _prefill_mask(model, seq, seq_valid, False), padding_positions(seq_valid), cache
                    )
                else:
                    positions = next_pos[:, None] + torch.arange(n_new, device=device)[None, :]
                    mask = None if bool(valid.all()) else seq_valid.long()
                    hidden = _run(model, pending, mask, positions, cache, seq)
                next_pos = next_pos + n_new
                passes += 1
                token = _argmax_over(model, hidden[:, -1], code_ids)
                codes[:, img, r, c] = to_code[token]
                tail = [lay.row_end] if c == w - 1 else []
                if r == h - 1 and c == w - 1:
                    tail.append(lay.image_end)
                    if img < n_images - 1:
                        tail += header
                pending = torch.cat(
                    [token[:, None], torch.tensor(tail, dtype=torch.long, device=device).expand(batch, -1)], 1
                )
    token_ids = torch.cat([seq[:, ids.shape[1] :], pending], dim=1)
    grids = [[codes[b, i].cpu().numpy() for i in range(n_images)] for b in range(batch)]
    return FramePrediction(grids, token_ids, passes)
