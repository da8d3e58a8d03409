"""The unified action world model: a Chameleon decoder with RynnVLA-002's changes and the continuous action head.

Built from transformers' Chameleon modules (``ChameleonDecoderLayer`` with its q/k LayerNorm attention, RMSNorm,
rotary embedding, ``ChameleonPreTrainedModel`` init), with the release's changes:

* image-token logits are allowed (stock Chameleon forces them to the minimum; ``config.mask_image_logits`` restores
  that), so the model can generate images as a world model;
* 4-D float attention masks (the discrete action-chunk mask) are built from the ids when none is given;
* optional dropout after attention and after the MLP of every decoder layer (``config.dropout``);
* the continuous action head (``action_head``) reading the final-norm states before the first action start;
* the loss: class-weighted cross-entropy (``image_loss_weight`` on ``layout.image_loss_ids``), L1 between the head
  and the bin-centre-decoded discrete action labels (``l1_weight``, VLA samples only), z-loss (``z_loss_weight``).

There is no VQGAN inside the model (the release deletes it before training). Parameter names equal the release's
(``model.embed_tokens``, ``model.layers.N.self_attn.q_norm`` ..., ``model.norm``, ``lm_head``, ``action_head.*``),
except that q/k-norm weights are stored per head ([heads, head_dim]) as transformers 5 does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.models.chameleon.modeling_chameleon import (
    ChameleonDecoderLayer,
    ChameleonPreTrainedModel,
    ChameleonRMSNorm,
    ChameleonRotaryEmbedding,
)

from rynnvla_model.action_head import ActionHead
from rynnvla_model.action_tokenizer import bin_centre_of_ids
from rynnvla_model.config import RynnVLAConfig
from rynnvla_model.masks import build_attention_mask
from rynnvla_model.vocab import VocabLayout

IGNORE_INDEX = -100
logger = logging.getLogger(__name__)


def default_dtype(device: str | torch.device) -> torch.dtype:
    """bfloat16 on CUDA, float32 on the CPU."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def default_attn_implementation(device: str | torch.device, dtype: torch.dtype | None = None) -> str:
    """``flash_attention_2`` on CUDA in 16-bit when the flash_attn package is importable, else ``sdpa``."""
    dtype = dtype or default_dtype(device)
    if (
        torch.device(device).type == "cuda"
        and dtype in (torch.bfloat16, torch.float16)
        and importlib.util.find_spec("flash_attn") is not None
    ):
        return "flash_attention_2"
    return "sdpa"


class RynnVLADecoderLayer(ChameleonDecoderLayer):
    """Chameleon decoder layer with dropout on the attention and MLP outputs before each residual add."""

    def __init__(self, config: RynnVLAConfig, layer_idx: int) -> None:
        super().__init__(config, layer_idx)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor]:
        residual = hidden_states
        attn_out, _ = self.self_attn(
            hidden_states=self.input_layernorm(hidden_states),
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = residual + self.dropout(attn_out)
        residual = hidden_states
        hidden_states = residual + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
        return (hidden_states,)


def image_slot_ids(input_ids: torch.Tensor, layout: VocabLayout) -> torch.LongTensor:
    """(B, L) place of each token inside its image block: 1 for ``image_start`` ... the block length for
    ``image_end``; 0 outside image blocks (an unfinished block at the end continues to count)."""
    idx = torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)
    none = torch.full_like(input_ids, -1)
    last_start = torch.where(input_ids == layout.image_start, idx, none).cummax(dim=-1).values
    last_end = torch.where(input_ids == layout.image_end, idx, none).cummax(dim=-1).values
    end_before = torch.cat([none[..., :1], last_end[..., :-1]], dim=-1)  # an image_end belongs to its own block
    inside = (last_start >= 0) & (last_start > end_before)
    return torch.where(inside, idx - last_start + 1, 0)


def image_reference_ids(input_ids: torch.Tensor, layout: VocabLayout, views: int) -> torch.LongTensor:
    """(B, L) for a token at place s of the k-th image block (k >= ``views``): the id at place s + 1 of block
    k - ``views``, i.e. the token at the place it predicts in the previous image of its view; ``layout.pad``
    elsewhere."""
    length = input_ids.shape[-1]
    idx = torch.arange(length, device=input_ids.device).expand_as(input_ids)
    slots = image_slot_ids(input_ids, layout)
    starts = input_ids == layout.image_start
    block = starts.long().cumsum(dim=-1) - 1
    start_pos = torch.full((input_ids.shape[0], length + 1), -1, dtype=torch.long, device=input_ids.device)
    start_pos.scatter_(1, torch.where(starts, block, length), idx)  # column `length` collects the other tokens
    source = block - views
    ref_pos = (start_pos.gather(1, source.clamp(min=0)) + slots).clamp(0, length - 1)
    found = (slots > 0) & (source >= 0) & (ref_pos < idx)
    found &= (slots.gather(1, ref_pos) == slots + 1) & (block.gather(1, ref_pos) == source)
    return torch.where(found, input_ids.gather(1, ref_pos), layout.pad)


class RynnVLABackbone(nn.Module):
    """Token embedding, decoder layers and final RMSNorm (Chameleon's text model without its VQ-VAE).

    With ``config.absolute_positions`` > 0 (not in the release) a learned embedding of each token's position is
    added to its token embedding: rotary attention tells a token how far away another one is, never where it is
    itself. On its own this did not make a small model trained from scratch learn where the block is; the head's
    spatial readout did (models/README.md).

    With ``config.image_reference_views`` = V > 0 (not in the release) each token of an image block also gets a
    learned embedding of the token at the place it predicts in the image V blocks earlier (the same view's previous
    frame; :func:`image_reference_ids`): a small model trained from scratch did not learn to find that token by
    attention, so it could not copy the parts of a frame that do not change (models/README.md).
    """

    def __init__(self, config: RynnVLAConfig) -> None:
        super().__init__()
        if config.swin_norm:
            raise ValueError("swin_norm=True is not supported (RynnVLA-002 uses swin_norm=False)")
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.embed_positions = (
            nn.Embedding(config.absolute_positions, config.hidden_size) if config.absolute_positions else None
        )
        self.embed_references = (
            nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.layout.pad)
            if config.image_reference_views
            else None
        )
        self.layers = nn.ModuleList(RynnVLADecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = ChameleonRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = ChameleonRotaryEmbedding(config=config)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool = False,
        full_ids: torch.LongTensor | None = None,
    ) -> tuple[torch.Tensor, Cache | None]:
        """Final-norm hidden states (B, L, hidden) and the cache.

        ``attention_mask``: a 4-D additive float mask (used as-is), a 2-D 0/1 padding mask over cached + new tokens,
        or None (causal). ``full_ids``: the cached and the new ids together, needed with
        ``config.image_reference_views`` when the new tokens continue an image block begun in the cache.
        """
        inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        if position_ids is None:
            seen = past_key_values.get_seq_length() if past_key_values is not None else 0
            position_ids = (torch.arange(input_ids.shape[1], device=input_ids.device) + seen).unsqueeze(0)
        if self.embed_positions is not None:
            last = self.embed_positions.num_embeddings - 1
            inputs_embeds = inputs_embeds + self.embed_positions(position_ids.clamp(0, last))
        if self.embed_references is not None:
            context = input_ids if full_ids is None else full_ids
            refs = image_reference_ids(context, self.config.layout, self.config.image_reference_views)
            inputs_embeds = inputs_embeds + self.embed_references(refs[:, -input_ids.shape[1] :])
        if attention_mask is not None and attention_mask.dim() == 4:
            mask = attention_mask.to(inputs_embeds.dtype)
        else:
            mask = create_causal_mask(
                config=self.config,
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                past_key_values=past_key_values,
                position_ids=position_ids,
            )
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                attention_mask=mask,
                position_ids=position_ids,
                past_key_values=past_key_values,
                use_cache=use_cache,
                position_embeddings=position_embeddings,
            )[0]
        return self.norm(hidden_states), past_key_values


@dataclass
class RynnVLAOutput:
    """Result of :meth:`RynnVLAForActionWorldModel.forward`; loss parts are None when not computed."""

    logits: torch.Tensor
    hidden_states: torch.Tensor
    loss: torch.Tensor | None = None
    ce_loss: torch.Tensor | None = None
    l1_loss: torch.Tensor | None = None
    z_loss: torch.Tensor | None = None
    actions: torch.Tensor | None = None
    """(n_vla, K, A) head predictions for the VLA rows of the batch (training forward)."""
    action_targets: torch.Tensor | None = None
    """(n_vla, K, A) bin-centre targets from the labels."""
    vla_rows: torch.Tensor | None = None
    past_key_values: Cache | None = None


def padding_positions(valid: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (left padding) and stay 0 on padding."""
    return (valid.long().cumsum(dim=1) - 1).clamp(min=0)


class RynnVLAForActionWorldModel(ChameleonPreTrainedModel):
    """Chameleon + RynnVLA-002: discrete actions, image generation and the continuous action head in one model."""

    config_class = RynnVLAConfig
    config: RynnVLAConfig
    _tied_weights_keys = None

    def __init__(self, config: RynnVLAConfig) -> None:
        super().__init__(config)
        config.validate_rynnvla()
        self.layout: VocabLayout = config.layout
        self.model = RynnVLABackbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.action_head = ActionHead(
            hidden_size=config.hidden_size,
            action_dim=config.action_dim,
            time_horizon=config.time_horizon,
            hidden_factor=config.action_head_hidden_factor,
            num_layers=config.action_head_layers,
            nhead=config.head_nhead,
            ff_factor=config.action_head_ff_factor,
            dropout=config.action_head_dropout,
            mask_padding=config.action_head_mask_padding,
            readout_tokens=config.action_head_readout_tokens,
            readout_dim=config.action_head_readout_dim,
        )
        self._weights_cache: dict[tuple[torch.device, float], torch.Tensor] = {}
        self.post_init()

    # ---------------------------------------------------------------- helpers
    @property
    def action_dim(self) -> int:
        return self.config.action_dim

    @property
    def time_horizon(self) -> int:
        return self.config.time_horizon

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    @contextlib.contextmanager
    def custom_mask_attention(self) -> Iterator[None]:
        """Run with an attention kernel that accepts 4-D float masks (flash-attention 2 does not: use SDPA)."""
        impl = self.config._attn_implementation
        if impl is None or "flash" not in impl:
            yield
            return
        self.config._attn_implementation = "sdpa"
        try:
            yield
        finally:
            self.config._attn_implementation = impl

    def class_weights(self, device: torch.device) -> torch.Tensor:
        """CE class weights: 1, except ``image_loss_weight`` on the inclusive id range ``layout.image_loss_ids``."""
        key = (device, float(self.config.image_loss_weight))
        if key not in self._weights_cache:
            weights = torch.ones(self.config.vocab_size, dtype=torch.float32, device=device)
            lo, hi = self.layout.image_loss_ids
            weights[lo : hi + 1] = self.config.image_loss_weight
            self._weights_cache[key] = weights
        return self._weights_cache[key]

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """LM logits; image-token logits are forced to the minimum only with ``config.mask_image_logits``."""
        logits = self.lm_head(hidden_states)
        if self.config.mask_image_logits:
            ids = torch.as_tensor(self.layout.image_ids(), device=logits.device)
            logits[..., ids] = torch.finfo(logits.dtype).min
        return logits

    def context_mask(self, input_ids: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) bool: real tokens before each row's first action start (all real tokens if there is none)."""
        length = input_ids.shape[1]
        is_start = input_ids == self.layout.action_start
        first = torch.where(is_start.any(dim=1), is_start.int().argmax(dim=1), torch.full_like(input_ids[:, 0], length))
        mask = torch.arange(length, device=input_ids.device)[None, :] < first[:, None]
        return mask if valid is None else mask & valid.bool()

    def predict_actions(self, hidden_states: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        """(B, K, A) normalised actions from final-norm states and a context mask."""
        return self.action_head(hidden_states, context_mask)

    def action_targets(self, labels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), K, A) bin centres of the labelled action blocks ``[start, A values, end]`` of each row."""
        a, k = self.action_dim, self.time_horizon
        lay = self.layout
        targets = []
        for r in rows.tolist():
            lab = labels[r]
            starts = torch.nonzero(lab == lay.action_start).flatten()
            spans = [
                int(s)
                for s in starts.tolist()
                if int(s) + a + 1 < lab.shape[0] and lab[int(s) + a + 1] == lay.action_end
            ]
            if len(spans) != k:
                raise ValueError(
                    f"VLA sample {r} has {len(spans)} labelled action blocks of {a} values, expected time_horizon={k}"
                )
            values = torch.stack([lab[s + 1 : s + 1 + a] for s in spans])
            targets.append(bin_centre_of_ids(values, lay.action_value_first))
        return torch.stack(targets)

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor,
        labels: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
        ce_loss: bool = True,
        l1_loss: bool = True,
        z_loss: bool = True,
        chunk_mask: bool = True,
    ) -> RynnVLAOutput:
        """Run the model; with ``labels`` compute the losses.

        ``attention_mask``: a 4-D additive float mask (B, 1, L, L_total) used as-is; or a 2-D 0/1 padding mask
        (B, L) from which the action-chunk mask (``chunk_mask=True``) or a causal mask is built and left padding gets
        position ids starting at 0; or None (no padding). With a non-empty cache a 2-D mask covers cached + new
        tokens and the causal mask is used.
        ``logits_to_keep``: if > 0, logits for the last positions only (no losses then).
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, L), got {tuple(input_ids.shape)}")
        cached = past_key_values is not None and past_key_values.get_seq_length() > 0
        valid = None
        mask = attention_mask
        dtype = self.model.embed_tokens.weight.dtype
        if mask is None or mask.dim() == 2:
            if mask is not None:
                valid = mask.bool()
                if not cached and position_ids is None:
                    position_ids = padding_positions(valid)
            if not cached:
                mask = build_attention_mask(input_ids, self.layout, valid, dtype=dtype, chunk=chunk_mask)
        elif mask.dim() != 4:
            raise ValueError(f"attention_mask must be 2-D or 4-D, got {tuple(mask.shape)}")
        context = self.custom_mask_attention() if mask is not None and mask.dim() == 4 else contextlib.nullcontext()
        with context:
            hidden, cache = self.model(input_ids, mask, position_ids, past_key_values, use_cache)
        if logits_to_keep > 0:
            return RynnVLAOutput(
                logits=self.compute_logits(hidden[:, -logits_to_keep:]), hidden_states=hidden, past_key_values=cache
            )
        out = RynnVLAOutput(logits=self.compute_logits(hidden), hidden_states=hidden, past_key_values=cache)
        if labels is not None:
            self._losses(out, input_ids, labels, valid, ce_loss, l1_loss, z_loss)
        return out

    def _losses(
        self,
        out: RynnVLAOutput,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor | None,
        use_ce: bool,
        use_l1: bool,
        use_z: bool,
    ) -> None:
        if labels.shape != input_ids.shape:
            raise ValueError(f"labels {tuple(labels.shape)} must match input_ids {tuple(input_ids.shape)}")
        cfg = self.config
        shift_logits = out.logits[:, :-1].float()
        shift_labels = labels[:, 1:]
        supervised = shift_labels != IGNORE_INDEX
        total = shift_logits.new_zeros(())
        if use_ce:
            if supervised.any():
                out.ce_loss = F.cross_entropy(
                    shift_logits.reshape(-1, cfg.vocab_size),
                    shift_labels.reshape(-1),
                    weight=self.class_weights(shift_logits.device),
                    ignore_index=IGNORE_INDEX,
                )
            else:
                out.ce_loss = shift_logits.sum() * 0.0
            total = total + out.ce_loss
        if use_z and cfg.z_loss_weight > 0:
            lse = torch.logsumexp(shift_logits[supervised], dim=-1)
            out.z_loss = lse.pow(2).mean() if lse.numel() else shift_logits.sum() * 0.0
            total = total + cfg.z_loss_weight * out.z_loss
        if use_l1:
            n_starts = (input_ids == self.layout.action_start).sum(dim=1)
            rows = torch.nonzero(n_starts > 1).flatten()
            out.vla_rows = rows
            if rows.numel():
                ctx = self.context_mask(input_ids, valid)[rows]
                out.actions = self.predict_actions(out.hidden_states[rows], ctx)
                out.action_targets = self.action_targets(labels, rows).to(out.actions.dtype)
                out.l1_loss = F.l1_loss(out.actions.float(), out.action_targets.float())
                total = total + cfg.l1_weight * out.l1_loss
            elif self.training:
                # No VLA row: run the head anyway with zero weight, so every data-parallel rank runs the same
                # modules (DDP needs no unused-parameter search, FSDP's all-gathers stay in step).
                ctx = self.context_mask(input_ids[:1], None if valid is None else valid[:1])
                total = total + 0.0 * self.predict_actions(out.hidden_states[:1], ctx).sum()
        out.loss = total


def empty_model(config: RynnVLAConfig, device: str | torch.device, dtype: torch.dtype) -> RynnVLAForActionWorldModel:
    """A model skeleton on the meta device (no memory), its attention kernel chosen for ``device``/``dtype``.

    A flash-attention setup that transformers refuses falls back to SDPA with a warning.
    """
    if config._attn_implementation is None:
        config._attn_implementation = default_attn_implementation(device, dtype)
    try:
        with torch.device("meta"):
            return RynnVLAForActionWorldModel(config)
    except (ImportError, ValueError, RuntimeError) as exc:
        if "flash" not in str(config._attn_implementation):
            raise
        logger.warning("flash attention unavailable (%s); using SDPA", exc)
        config._attn_implementation = "sdpa"
        with torch.device("meta"):
            return RynnVLAForActionWorldModel(config)
