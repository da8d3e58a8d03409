"""The unified token vocabulary: one object that every tokenizer, sequence builder and mask asks for ids.

Two layouts share one structure:

* ``VocabLayout.official(...)`` is Chameleon's 65,536-id vocabulary as used by RynnVLA-002. Its special ids are
  reserved Chameleon tokens (BOS 0, turn separator 8710, image start 8197 / end 8196, row end 8803, grid tokens
  8804 + n, action 10004 / 15004 with values 10006..10261, state 15504 / 16004 with values 15506..15761). Image
  codes map to BPE ids through the tokenizer's ``IMGIMG...`` vocabulary names, so the mapping is passed in.
* ``VocabLayout.compact(...)`` packs the same roles into a small contiguous vocabulary (bytes for text, then 256
  action values, 256 state values and the VQ codebook) so that small models train and run fast on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

NUM_BINS = 256
"""Number of quantisation bins for one action or state scalar (``np.digitize`` index 1..256)."""

OFFICIAL_VOCAB_SIZE = 65536


@dataclass(frozen=True)
class VocabLayout:
    """Token ids of every role in one vocabulary.

    ``action_value_first`` is the id of bin index 1 (``np.digitize`` is 1-based), so bin index ``i`` has id
    ``action_value_first + i - 1``; the same holds for states. ``image_code_ids[c]`` is the id of VQ code ``c``.
    """

    name: str
    vocab_size: int
    bos: int
    eos: int
    pad: int
    turn_sep: int
    image_start: int
    image_end: int
    row_end: int
    grid_base: int
    max_grid: int
    action_start: int
    action_end: int
    action_value_first: int
    state_start: int
    state_end: int
    state_value_first: int
    text_byte_first: int | None
    image_code_ids: tuple[int, ...] = field(repr=False)
    image_loss_ids: tuple[int, int]
    """Inclusive id range that gets the reduced image-token loss weight (official: 3..8194, as in the release)."""

    # ---------------------------------------------------------------- constructors
    @classmethod
    def official(cls, image_code_ids: np.ndarray | list[int]) -> VocabLayout:
        """Chameleon/RynnVLA-002 layout; ``image_code_ids[c]`` comes from the tokenizer's ``IMGIMG`` names."""
        ids = tuple(int(i) for i in np.asarray(image_code_ids).reshape(-1))
        if len(ids) != 8192:
            raise ValueError(f"the official layout needs 8192 image code ids, got {len(ids)}")
        return cls(
            name="official",
            vocab_size=OFFICIAL_VOCAB_SIZE,
            bos=0,
            eos=2,
            pad=0,
            turn_sep=8710,
            image_start=8197,
            image_end=8196,
            row_end=8803,
            grid_base=8804,
            max_grid=64,
            action_start=10004,
            action_end=15004,
            action_value_first=10006,
            state_start=15504,
            state_end=16004,
            state_value_first=15506,
            text_byte_first=None,
            image_code_ids=ids,
            image_loss_ids=(3, 8194),
        )

    @classmethod
    def compact(cls, codebook_size: int, max_grid: int = 32) -> VocabLayout:
        """A small contiguous layout: specials, grid tokens, 256 text bytes, action, state and image codes."""
        if codebook_size < 2:
            raise ValueError("codebook_size must be at least 2")
        nxt = 11  # 0 BOS, 1 PAD, 2 EOS, 3 turn sep, 4..10 block delimiters
        grid_base = nxt
        nxt += max_grid + 1
        text_byte_first = nxt
        nxt += 256
        action_value_first = nxt
        nxt += NUM_BINS
        state_value_first = nxt
        nxt += NUM_BINS
        image_first = nxt
        nxt += codebook_size
        return cls(
            name="compact",
            vocab_size=nxt,
            bos=0,
            eos=2,
            pad=1,
            turn_sep=3,
            image_start=4,
            image_end=5,
            row_end=6,
            grid_base=grid_base,
            max_grid=max_grid,
            action_start=7,
            action_end=8,
            action_value_first=action_value_first,
            state_start=9,
            state_end=10,
            state_value_first=state_value_first,
            text_byte_first=text_byte_first,
            image_code_ids=tuple(range(image_first, image_first + codebook_size)),
            image_loss_ids=(image_first, image_first + codebook_size - 1),
        )

    # ---------------------------------------------------------------- queries
    @property
    def codebook_size(self) -> int:
        """Number of VQ codes the layout can hold."""
        return len(self.image_code_ids)

    def grid_token(self, latent_size: int) -> int:
        """Grid-size token for a latent side of ``latent_size`` codes (counts 32-px patches: half the latent side)."""
        if latent_size % 2 or not 0 < latent_size // 2 <= self.max_grid:
            raise ValueError(f"latent side {latent_size} must be even and at most {2 * self.max_grid}")
        return self.grid_base + latent_size // 2

    def action_value_ids(self) -> np.ndarray:
        """All 256 action value ids, in bin order."""
        return np.arange(self.action_value_first, self.action_value_first + NUM_BINS)

    def state_value_ids(self) -> np.ndarray:
        """All 256 state value ids, in bin order."""
        return np.arange(self.state_value_first, self.state_value_first + NUM_BINS)

    def image_ids(self) -> np.ndarray:
        """Token id of every VQ code, indexed by code."""
        return np.asarray(self.image_code_ids, dtype=np.int64)

    def image_id_to_code(self) -> dict[int, int]:
        """Inverse of :meth:`image_ids`."""
        return {tok: code for code, tok in enumerate(self.image_code_ids)}

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (saved in a checkpoint's config)."""
        d = asdict(self)
        d["image_code_ids"] = list(self.image_code_ids)
        d["image_loss_ids"] = list(self.image_loss_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VocabLayout:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["image_code_ids"] = tuple(int(i) for i in d["image_code_ids"])
        d["image_loss_ids"] = tuple(int(i) for i in d["image_loss_ids"])
        return cls(**d)
