"""The continuous "Action Transformer" head of RynnVLA-002.

K*A learnable query tokens (one per scalar of the chunk, one embedding row of K*A*hidden values) are appended to the
backbone's final-norm hidden states of the context (every token before the first action start). The sequence is
projected to ``int(hidden * 0.25)``, run through a bidirectional ``nn.TransformerEncoder`` (post-LN, ReLU, FF 4x,
dropout 0.1, final LayerNorm, no positional encoding) and the K*A query outputs go through an MLP-ResNet that maps
each step's A*d features to A normalised action values. Parameter names match the release's state dict.

``readout_tokens`` = N > 0 (not in the release; 0 reproduces it) adds a spatial readout: the last N context tokens
(the images, which end the prompt) are projected to ``readout_dim`` values each, flattened in order and mapped by
one linear layer to a vector added to every query. The encoder alone pools the context by attention without knowing
where a token sits, which a small model trained from scratch does not learn to do: its chunks ignored where the
block was, although a linear map of the backbone's states, position by position, predicts the first motion well.

Batching: sample i is laid out as ``[context_i, queries, zeros]``, right-padded with zero vectors to the longest
context. The release passes no padding mask, so those zero rows are attended (``mask_padding=False``, the default,
reproduces it; with one sample or equal lengths there is no padding and both settings agree). ``mask_padding=True``
excludes them, which makes a sample's output independent of the rest of the batch.
"""

from __future__ import annotations

import torch
from torch import nn


class MLPResNetBlock(nn.Module):
    """Pre-LN residual block: ``x + ReLU(Linear(LN(x)))`` (``ffn`` = [LayerNorm, Linear, ReLU])."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    """LN -> Linear -> ReLU -> residual blocks -> LN -> Linear."""

    def __init__(self, num_blocks: int, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(input_dim)
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList(MLPResNetBlock(hidden_dim) for _ in range(num_blocks))
        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))


class L1RegressionActionHead(nn.Module):
    """Maps (B, K*A, d) query features to (B, K, A): each step's A features are concatenated (A*d) first."""

    def __init__(self, width: int, time_horizon: int, action_dim: int) -> None:
        super().__init__()
        self.time_horizon = time_horizon
        self.action_dim = action_dim
        self.model = MLPResNet(num_blocks=2, input_dim=width * action_dim, hidden_dim=width, output_dim=action_dim)

    def forward(self, query_features: torch.Tensor) -> torch.Tensor:
        batch = query_features.shape[0]
        return self.model(query_features.reshape(batch, self.time_horizon, -1))


class ActionHead(nn.Module):
    """Learnable action queries + transformer encoder + MLP-ResNet over the backbone's context states."""

    def __init__(
        self,
        hidden_size: int,
        action_dim: int,
        time_horizon: int,
        hidden_factor: float = 0.25,
        num_layers: int = 2,
        nhead: int = 4,
        ff_factor: int = 4,
        dropout: float = 0.1,
        mask_padding: bool = False,
        readout_tokens: int = 0,
        readout_dim: int = 8,
    ) -> None:
        super().__init__()
        width = int(hidden_size * hidden_factor)
        if width < 1 or width % nhead:
            raise ValueError(f"head width {width} must be positive and divisible by nhead {nhead}")
        self.hidden_size = hidden_size
        self.action_dim = action_dim
        self.time_horizon = time_horizon
        self.width = width
        self.mask_padding = mask_padding
        self.action_token_embeddings = nn.Embedding(1, time_horizon * action_dim * hidden_size)
        nn.init.normal_(self.action_token_embeddings.weight, std=0.02)
        self.hidden_projection = nn.Linear(hidden_size, width)
        self.readout_tokens = readout_tokens
        if readout_tokens:
            self.readout_projection = nn.Linear(hidden_size, readout_dim)
            self.readout = nn.Linear(readout_tokens * readout_dim, width)
        layer = nn.TransformerEncoderLayer(
            d_model=width,
            nhead=nhead,
            dim_feedforward=width * ff_factor,
            dropout=dropout,
            activation="relu",
            batch_first=True,
            norm_first=False,
        )
        self.transformer_encoder = nn.TransformerEncoder(
            layer, num_layers=num_layers, norm=nn.LayerNorm(width), enable_nested_tensor=False
        )
        self.output_projection = L1RegressionActionHead(width, time_horizon, action_dim)

    @property
    def num_queries(self) -> int:
        """K*A: one query per action scalar."""
        return self.time_horizon * self.action_dim

    def forward(self, hidden_states: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        """Predict (B, K, A) normalised actions.

        ``hidden_states``: (B, L, hidden) final-norm states; ``context_mask``: (B, L) bool, True on the tokens that
        form each sample's context (any positions; they are packed in order).
        """
        if hidden_states.dim() != 3 or hidden_states.shape[-1] != self.hidden_size:
            raise ValueError(f"hidden_states must be (B, L, {self.hidden_size}), got {tuple(hidden_states.shape)}")
        if context_mask.shape != hidden_states.shape[:2]:
            raise ValueError(f"context_mask {tuple(context_mask.shape)} must be (B, L) = {hidden_states.shape[:2]}")
        batch, _, hidden = hidden_states.shape
        device = hidden_states.device
        context_mask = context_mask.bool()
        lengths = context_mask.sum(dim=1)
        max_len = int(lengths.max().item()) if batch else 0
        n_q = self.num_queries

        # Pack each sample's context tokens to the front (stable order), zero the rest.
        order = torch.argsort((~context_mask).to(torch.int8), dim=1, stable=True)[:, :max_len]
        packed = torch.gather(hidden_states, 1, order[..., None].expand(-1, -1, hidden))
        in_ctx = torch.arange(max_len, device=device)[None, :] < lengths[:, None]
        packed = packed * in_ctx[..., None].to(packed.dtype)

        # Lay out [context_i, queries, zeros]: gather from [packed | queries | one zero row].
        queries = self.action_token_embeddings.weight.view(1, n_q, hidden).to(packed.dtype).expand(batch, -1, -1)
        zero = torch.zeros(batch, 1, hidden, dtype=packed.dtype, device=device)
        source = torch.cat([packed, queries, zero], dim=1)
        t = torch.arange(max_len + n_q, device=device)[None, :]
        rel = t - lengths[:, None]
        index = torch.where(
            t < lengths[:, None],
            t,
            torch.where(rel < n_q, max_len + rel, torch.full_like(t, max_len + n_q)),
        )
        sequence = torch.gather(source, 1, index[..., None].expand(-1, -1, hidden))

        padding = (rel >= n_q) if self.mask_padding else None
        projected = self.hidden_projection(sequence)
        if self.readout_tokens:
            projected = projected + ((rel >= 0) & (rel < n_q))[..., None] * self._readout(packed, lengths)[:, None]
        encoded = self.transformer_encoder(projected, src_key_padding_mask=padding)
        q_index = lengths[:, None] + torch.arange(n_q, device=device)[None, :]
        query_out = torch.gather(encoded, 1, q_index[..., None].expand(-1, -1, self.width))
        return self.output_projection(query_out)

    def _readout(self, packed: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, width): the last ``readout_tokens`` context tokens, projected, flattened and mapped (zeros stand in
        for tokens before a shorter context's start)."""
        n = self.readout_tokens
        index = lengths[:, None] - n + torch.arange(n, device=packed.device)[None, :]
        rows = torch.gather(packed, 1, index.clamp(min=0)[..., None].expand(-1, -1, packed.shape[-1]))
        rows = rows * (index >= 0)[..., None].to(rows.dtype)
        return self.readout(self.readout_projection(rows).flatten(1))
