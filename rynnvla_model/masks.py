"""Attention masks: the discrete action-chunk mask, plain causal masks and padding, as additive float masks.

The chunk rule is RynnVLA-002's: start from a causal mask; every action block ``[action_start ... action_end]``
whose start lies after the end of the last image block (the VLA answer chunk) must not attend to any earlier action
block, start and end tokens included. An action block without its end token runs to the end of the sequence, and
so does an image block without its end (then no action block comes after the last image, and the mask is causal).
World-model samples have their action before the last image, so the rule leaves them plainly causal.

Blocks are paired in reading order: a start opens a block that the next end token closes (for well-formed
sequences this is the release's pairing).

Masks are float tensors of shape (B, 1, Q, K) holding 0 where attention is allowed and -inf elsewhere, in the
dtype of the attention scores. Padded positions (``valid`` False) are never attended; a padded query row attends
only to itself so that no row is entirely -inf (which would give NaN that leaks into later layers).
"""

from __future__ import annotations

import numpy as np
import torch

from rynnvla_model.vocab import VocabLayout


def _as_ids(input_ids: torch.Tensor | np.ndarray) -> torch.Tensor:
    ids = torch.as_tensor(input_ids)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if ids.dim() != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"input_ids must be an integer tensor of shape (B, L), got {tuple(ids.shape)} {ids.dtype}")
    return ids


def _as_valid(valid: torch.Tensor | np.ndarray | None, ids: torch.Tensor) -> torch.Tensor:
    if valid is None:
        return torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
    v = torch.as_tensor(valid, device=ids.device)
    if v.dim() == 1:
        v = v.unsqueeze(0)
    if tuple(v.shape) != tuple(ids.shape):
        raise ValueError(f"padding mask shape {tuple(v.shape)} does not match input_ids {tuple(ids.shape)}")
    return v.bool()


def action_blocks(row: np.ndarray, layout: VocabLayout) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` of every action block in one sequence (an unclosed last block ends at L-1)."""
    row = np.asarray(row).reshape(-1)
    starts = np.flatnonzero(row == layout.action_start)
    ends = np.flatnonzero(row == layout.action_end)
    blocks: list[tuple[int, int]] = []
    last_end = -1
    for s in starts:
        if s <= last_end:
            continue
        later = ends[ends > s]
        e = int(later[0]) if later.size else row.size - 1
        blocks.append((int(s), e))
        last_end = e
    return blocks


def last_image_end(row: np.ndarray, layout: VocabLayout) -> int:
    """Position of the last image block's end (L-1 if the last block is unclosed, -1 if there is no image)."""
    row = np.asarray(row).reshape(-1)
    n_start = int(np.count_nonzero(row == layout.image_start))
    ends = np.flatnonzero(row == layout.image_end)
    if n_start > ends.size:
        return row.size - 1
    return int(ends[-1]) if ends.size else -1


def chunk_block_ids(input_ids: torch.Tensor | np.ndarray, layout: VocabLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token: index of its action block (-1 outside blocks) and whether that block is a masked chunk block.

    Returns ``(block_of, chunk_row)``, both (B, L), long and bool, on the device of ``input_ids``.
    """
    ids = _as_ids(input_ids)
    rows = ids.detach().cpu().numpy()
    block_of = np.full(rows.shape, -1, dtype=np.int64)
    chunk_row = np.zeros(rows.shape, dtype=bool)
    for b, row in enumerate(rows):
        img_end = last_image_end(row, layout)
        for n, (s, e) in enumerate(action_blocks(row, layout)):
            block_of[b, s : e + 1] = n
            if s > img_end:
                chunk_row[b, s : e + 1] = True
    return torch.from_numpy(block_of).to(ids.device), torch.from_numpy(chunk_row).to(ids.device)


def allowed_rows(
    input_ids: torch.Tensor | np.ndarray,
    layout: VocabLayout,
    valid: torch.Tensor | np.ndarray | None = None,
    q_start: int = 0,
    chunk: bool = True,
) -> torch.Tensor:
    """Boolean (B, L - q_start, L) matrix: may query row ``q_start + i`` attend to key ``j``.

    ``input_ids`` is the whole sequence so far (for a KV-cache step: cached tokens plus the new ones, with
    ``q_start`` the number of cached tokens). ``chunk=False`` gives the plain causal (+ padding) mask.
    """
    ids = _as_ids(input_ids)
    keep = _as_valid(valid, ids)
    length = ids.shape[1]
    if not 0 <= q_start < length:
        raise ValueError(f"q_start must be in [0, {length}), got {q_start}")
    q = torch.arange(q_start, length, device=ids.device)
    k = torch.arange(length, device=ids.device)
    causal = k[None, :] <= q[:, None]
    allowed = causal[None] & keep[:, None, :]
    if chunk:
        block_of, chunk_row = chunk_block_ids(ids, layout)
        blk_q = block_of[:, q_start:]
        other_block = (block_of[:, None, :] >= 0) & (block_of[:, None, :] != blk_q[:, :, None])
        allowed &= ~(chunk_row[:, q_start:, None] & other_block)
    diag = (k[None, :] == q[:, None])[None]
    return allowed | (diag & ~keep[:, q_start:, None])


def to_additive(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, Q, K) booleans -> (B, 1, Q, K) float mask with 0 where allowed and -inf elsewhere."""
    if allowed.dim() != 3 or allowed.dtype != torch.bool:
        raise ValueError(f"expected a boolean (B, Q, K) tensor, got {tuple(allowed.shape)} {allowed.dtype}")
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, float("-inf")).unsqueeze(1)


def build_attention_mask(
    input_ids: torch.Tensor | np.ndarray,
    layout: VocabLayout,
    valid: torch.Tensor | np.ndarray | None = None,
    dtype: torch.dtype = torch.float32,
    chunk: bool = True,
) -> torch.Tensor:
    """Full (B, 1, L, L) additive mask for training or a prefill: chunk rule (or plain causal) + padding."""
    return to_additive(allowed_rows(input_ids, layout, valid, 0, chunk), dtype)


def step_attention_mask(
    input_ids: torch.Tensor | np.ndarray,
    layout: VocabLayout,
    n_new: int,
    valid: torch.Tensor | np.ndarray | None = None,
    dtype: torch.dtype = torch.float32,
    chunk: bool = True,
) -> torch.Tensor:
    """(B, 1, n_new, L) rows of the mask for the last ``n_new`` tokens of ``input_ids`` (a KV-cache step)."""
    ids = _as_ids(input_ids)
    if not 1 <= n_new <= ids.shape[1]:
        raise ValueError(f"n_new must be in [1, {ids.shape[1]}], got {n_new}")
    return to_additive(allowed_rows(ids, layout, valid, ids.shape[1] - n_new, chunk), dtype)


def parallel_chunk_step_mask(
    prompt_valid: torch.Tensor, n_blocks: int, step: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Rows for the parallel discrete decoder at decode ``step`` (0-based), shape (B, 1, n_blocks, Lp + (step+1)*K).

    The cache holds the prompt (``prompt_valid`` (B, Lp) marks its real tokens) followed by ``step + 1`` groups of
    ``n_blocks`` tokens, group ``s`` holding token ``s`` of every block in block order. Block ``k`` sees the real
    prompt tokens and its own tokens only: exactly what the chunk rule lets it see in the sequential layout.
    """
    if prompt_valid.dim() != 2 or n_blocks < 1 or step < 0:
        raise ValueError("need prompt_valid (B, Lp), n_blocks >= 1 and step >= 0")
    batch, prompt_len = prompt_valid.shape
    device = prompt_valid.device
    gen = torch.arange((step + 1) * n_blocks, device=device) % n_blocks
    own = gen[None, :] == torch.arange(n_blocks, device=device)[:, None]  # (K, (step+1)K)
    allowed = torch.cat(
        [prompt_valid.bool()[:, None, :].expand(batch, n_blocks, prompt_len), own[None].expand(batch, -1, -1)], dim=2
    )
    return to_additive(allowed, dtype)
