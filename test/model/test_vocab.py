"""The vocabulary layouts: the official RynnVLA-002 ids and a compact layout without overlaps."""

from __future__ import annotations

import numpy as np
import pytest

from rynnvla_model.vocab import VocabLayout


def test_official_ids() -> None:
    layout = VocabLayout.official(4 + np.arange(8192))
    assert (layout.bos, layout.eos, layout.turn_sep) == (0, 2, 8710)
    assert (layout.image_start, layout.image_end, layout.row_end) == (8197, 8196, 8803)
    assert layout.grid_token(16) == 8812  # 256 px: 16x16 latent grid, 8 patches of 32 px
    assert layout.grid_token(32) == 8820  # 512 px
    assert (layout.action_start, layout.action_end) == (10004, 15004)
    assert (layout.state_start, layout.state_end) == (15504, 16004)
    assert layout.action_value_ids()[[0, -1]].tolist() == [10006, 10261]
    assert layout.state_value_ids()[[0, -1]].tolist() == [15506, 15761]
    assert layout.image_loss_ids == (3, 8194) and layout.vocab_size == 65536
    with pytest.raises(ValueError, match="8192 image code ids"):
        VocabLayout.official(np.arange(10))
    with pytest.raises(ValueError, match="must be even"):
        layout.grid_token(15)


def test_compact_layout_roles_do_not_overlap_and_round_trip() -> None:
    layout = VocabLayout.compact(codebook_size=100, max_grid=8)
    names = ["bos", "pad", "eos", "turn_sep", "image_start", "image_end", "row_end", "action_start", "action_end",
             "state_start", "state_end"]  # fmt: skip
    specials = [getattr(layout, n) for n in names]
    ranges = [
        set(specials),
        set(range(layout.grid_base + 1, layout.grid_base + layout.max_grid + 1)),
        set(range(layout.text_byte_first, layout.text_byte_first + 256)),
        set(layout.action_value_ids().tolist()),
        set(layout.state_value_ids().tolist()),
        set(layout.image_code_ids),
    ]
    assert len(set(specials)) == len(specials)
    assert sum(len(r) for r in ranges) == len(set().union(*ranges))
    assert max(max(r) for r in ranges) < layout.vocab_size
    assert VocabLayout.from_dict(layout.to_dict()) == layout
    assert {v: k for k, v in layout.image_id_to_code().items()} == dict(enumerate(layout.image_code_ids))
