"""Configuration of the unified action world model.

``RynnVLAConfig`` subclasses transformers' ``ChameleonConfig`` (a dataclass config in transformers 5), so every
backbone field keeps its Chameleon name and meaning and an official ``config.json`` maps onto it field by field.
It adds what RynnVLA-002 adds on top: the action chunk shape (``action_dim`` A, ``time_horizon`` K), the loss weights,
the decoder dropout, the image-logit flag, the continuous action-head settings and the vocabulary layout
(``VocabLayout.to_dict()``), which tells the model which ids are action, state and image tokens.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import ChameleonConfig

from rynnvla_model.vocab import VocabLayout


class RynnVLAConfig(ChameleonConfig):
    """Chameleon backbone + RynnVLA-002 action/world-model settings.

    Extra fields (defaults are the official values):

    * ``action_dim`` / ``time_horizon``: A scalars per action, K actions per chunk.
    * ``z_loss_weight`` 1e-5, ``l1_weight`` 10 (continuous head), ``image_loss_weight`` 0.04 (CE class weight of the
      ids in ``vocab_layout["image_loss_ids"]``).
    * ``mask_image_logits``: force image-token logits to the minimum (stock Chameleon does; RynnVLA-002 does not).
    * ``dropout``: applied after attention and after the MLP in every decoder layer (training only).
    * ``world_model_horizon``: H, dataset steps between a world-model sample's frame t and the frame it predicts,
      t + H, whose action is the target due at t + H - 1 (1, the release: the next frame and the first action).
    * ``action_head_*``: the Action Transformer head (reduced width ``int(hidden_size * hidden_factor)``, encoder
      layers, heads, feed-forward factor, dropout) and ``action_head_mask_padding`` (False = official behaviour:
      the zero rows that pad a batch of contexts are attended).
    * ``absolute_positions``: N > 0 adds learned embeddings of the first N positions to the token embeddings
      (GPT-2 style; positions past N share the last one); 0 = the release (rotary only).
    * ``image_reference_views``: V > 0 (the number of camera views per frame) gives each image token a learned
      embedding of the token at the place it predicts in the image V blocks earlier (the same view's previous frame),
      so a world model can copy what does not change; 0 = the release.
    * ``action_head_readout_tokens`` / ``action_head_readout_dim``: N > 0 adds the head's spatial readout of the
      last N context tokens (``readout_dim`` values each); 0 = the release. See :mod:`rynnvla_model.action_head`.
    """

    model_type = "rynnvla"

    action_dim: int = 7
    time_horizon: int = 5
    z_loss_weight: float = 1e-5
    l1_weight: float = 10.0
    image_loss_weight: float = 0.04
    mask_image_logits: bool = False
    dropout: float = 0.0
    vocab_layout: dict | None = None
    action_head_hidden_factor: float = 0.25
    action_head_layers: int = 2
    action_head_nhead: int | None = None
    action_head_ff_factor: int = 4
    action_head_dropout: float = 0.1
    action_head_mask_padding: bool = False
    absolute_positions: int = 0
    image_reference_views: int = 0
    action_head_readout_tokens: int = 0
    action_head_readout_dim: int = 8
    world_model_horizon: int = 1

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.validate_rynnvla()

    # ---------------------------------------------------------------- checks and derived values
    def validate_rynnvla(self) -> None:
        """Raise ValueError on inconsistent settings."""
        integers = {  # name: smallest allowed value (0: the option is off, as in the release)
            "action_dim": 1,
            "time_horizon": 1,
            "action_head_layers": 1,
            "action_head_ff_factor": 1,
            "action_head_readout_dim": 1,
            "world_model_horizon": 1,
            "absolute_positions": 0,
            "image_reference_views": 0,
            "action_head_readout_tokens": 0,
        }
        for name, low in integers.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("z_loss_weight", "l1_weight", "image_loss_weight", "dropout", "action_head_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.dropout >= 1 or self.action_head_dropout >= 1:
            raise ValueError("dropout probabilities must be < 1")
        if not 0 < self.action_head_hidden_factor <= 4:
            raise ValueError(f"action_head_hidden_factor must be in (0, 4], got {self.action_head_hidden_factor}")
        if self.head_width < 1:
            raise ValueError(f"hidden_size {self.hidden_size} x {self.action_head_hidden_factor} gives an empty head")
        nhead = self.head_nhead
        if self.head_width % nhead:
            raise ValueError(f"action-head width {self.head_width} is not divisible by action_head_nhead {nhead}")
        if self.vocab_layout is not None:
            layout = self.layout
            if layout.vocab_size != self.vocab_size:
                raise ValueError(f"vocab_layout has {layout.vocab_size} ids but vocab_size is {self.vocab_size}")

    @property
    def layout(self) -> VocabLayout:
        """The vocabulary layout (ids of every token role)."""
        if self.vocab_layout is None:
            raise ValueError("this config has no vocab_layout; build it with RynnVLAConfig.official_7b/tiny/small")
        return VocabLayout.from_dict(self.vocab_layout)

    @property
    def head_width(self) -> int:
        """Reduced width of the action head: ``int(hidden_size * action_head_hidden_factor)`` (1024 for 7B)."""
        return int(self.hidden_size * self.action_head_hidden_factor)

    @property
    def head_nhead(self) -> int:
        """Attention heads of the action head: the configured value, else 4 (official) or the largest divisor <= 4."""
        if self.action_head_nhead is not None:
            if self.action_head_nhead < 1:
                raise ValueError(f"action_head_nhead must be >= 1, got {self.action_head_nhead}")
            return int(self.action_head_nhead)
        return max(n for n in (4, 3, 2, 1) if self.head_width % n == 0)

    # ---------------------------------------------------------------- presets
    @classmethod
    def official_7b(cls, action_dim: int, time_horizon: int, layout: VocabLayout, **overrides: Any) -> RynnVLAConfig:
        """The released 7B architecture: 32 layers, hidden 4096, 32 heads, FF 11008, RMSNorm 1e-5, RoPE 1e4.

        ``layout`` must be an official layout (65,536 ids), built from the tokenizer's image-code names.
        """
        if layout.vocab_size != 65536:
            raise ValueError(
                f"official_7b needs the official 65,536-id layout, got {layout.name} ({layout.vocab_size})"
            )
        kwargs: dict[str, Any] = {
            "vocab_size": 65536,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "max_position_embeddings": 4096,
            "bos_token_id": layout.bos,
            "eos_token_id": layout.turn_sep,
        }
        kwargs.update(overrides)
        return cls(action_dim=action_dim, time_horizon=time_horizon, vocab_layout=layout.to_dict(), **kwargs)

    @classmethod
    def tiny(
        cls,
        action_dim: int = 7,
        time_horizon: int = 5,
        codebook_size: int = 16,
        hidden_size: int = 32,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 4,
        **overrides: Any,
    ) -> RynnVLAConfig:
        """A few-hundred-kB model on the compact layout, for tests and CPU demos."""
        return cls._compact(
            action_dim, time_horizon, codebook_size, hidden_size, num_hidden_layers, num_attention_heads, overrides
        )

    @classmethod
    def small(
        cls, action_dim: int = 7, time_horizon: int = 5, codebook_size: int = 8192, **overrides: Any
    ) -> RynnVLAConfig:
        """A ~31M-parameter model (hidden 512, 8 layers) on the compact layout with all 8192 image codes."""
        return cls._compact(action_dim, time_horizon, codebook_size, 512, 8, 8, overrides)

    @classmethod
    def _compact(
        cls,
        action_dim: int,
        time_horizon: int,
        codebook_size: int,
        hidden_size: int,
        num_hidden_layers: int,
        num_attention_heads: int,
        overrides: dict[str, Any],
    ) -> RynnVLAConfig:
        layout = VocabLayout.compact(codebook_size)
        kwargs: dict[str, Any] = {
            "vocab_size": layout.vocab_size,
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_hidden_layers,
            "num_attention_heads": num_attention_heads,
            "num_key_value_heads": num_attention_heads,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "max_position_embeddings": 4096,
            "bos_token_id": layout.bos,
            "eos_token_id": layout.turn_sep,
            "pad_token_id": layout.pad,
        }
        kwargs.update(overrides)
        return cls(action_dim=action_dim, time_horizon=time_horizon, vocab_layout=layout.to_dict(), **kwargs)
