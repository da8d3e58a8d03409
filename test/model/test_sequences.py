"""Sequence formats of RynnVLA-002: exact official layout, labels, round trips and batching."""

from __future__ import annotations

import numpy as np
import pytest

from rynnvla_model.action_tokenizer import BinTokenizer, libero_norm_stats
from rynnvla_model.image_tokenizer import image_block_length
from rynnvla_model.sequences import VLA_PROMPT, WM_PROMPT, SequenceBuilder, TokenSample, pad_batch
from rynnvla_model.text_tokenizer import ByteTokenizer
from rynnvla_model.vocab import VocabLayout


class FakeText:
    """Stands in for Chameleon's BPE: one id per word, ids 20000 + position in a fixed word list."""

    def __init__(self) -> None:
        self.words: list[str] = []

    def encode(self, text: str) -> list[int]:
        out = []
        for word in text.split(" "):
            if word not in self.words:
                self.words.append(word)
            out.append(20000 + self.words.index(word))
        return out

    def decode(self, ids):
        return " ".join(self.words[i - 20000] for i in ids)


@pytest.fixture
def official() -> VocabLayout:
    rng = np.random.default_rng(0)
    return VocabLayout.official(4 + rng.permutation(8192))


def official_builder(layout: VocabLayout, with_state: bool = True) -> SequenceBuilder:
    stats = libero_norm_stats()
    action = BinTokenizer.from_stats(stats["action"], layout.action_value_first)
    state = BinTokenizer.from_stats(stats["state"], layout.state_value_first) if with_state else None
    return SequenceBuilder(layout, FakeText(), action, state)


def grids(n: int, side: int = 4, codebook: int = 8192, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, codebook, size=(side, side)) for _ in range(n)]


def test_official_vla_sample_exact_layout(official: VocabLayout) -> None:
    b = official_builder(official)
    text = b.text_tokenizer.encode(VLA_PROMPT.format(task="pick up the bowl"))
    state = np.zeros(8)
    images = grids(4)
    actions = np.array([[0, 0, 0, 0, 0, 0, -1.0], [0, 0, 0, 0, 0, 0, 5.0]])
    s = b.vla_sample("pick up the bowl", state, images, actions)
    ids, labels = s.input_ids, s.labels
    assert s.kind == "vla" and ids.dtype == np.int64 and labels.dtype == np.int64
    assert ids[0] == 0
    n = 1 + len(text)
    assert ids[1:n].tolist() == text
    assert ids[n] == 15504 and ids[n + 9] == 16004
    assert np.all((ids[n + 1 : n + 9] >= 15506) & (ids[n + 1 : n + 9] <= 15761))
    pos = n + 10
    blk = image_block_length(4, 4)
    for k, codes in enumerate(images):
        block = ids[pos + k * blk : pos + (k + 1) * blk]
        assert block[0] == 8197 and block[1] == 8806 and block[2] == 8806 and block[-1] == 8196
        assert block[3 + 4] == 8803  # end of the first row
        assert block[3] == official.image_code_ids[codes[0, 0]]
    pos += 4 * blk
    assert ids[pos] == 8710
    prompt_len = pos + 1
    assert np.all(labels[:prompt_len] == -100)
    assert s.prompt_length == prompt_len
    answer = ids[prompt_len:]
    # zero action with LIBERO bounds: dims 0-2 land just below 0 (index 128), rx/rz are asymmetric, gripper -1 -> 1
    assert answer.tolist()[:9] == [10004, 10133, 10133, 10133, 10110, 10133, 10131, 10006, 15004]
    # the gripper at +5 is clipped to +1: digitize index 256 -> the last id 10261
    assert answer[9] == 10004 and answer[16] == 10261 and answer[17] == 15004
    assert answer[-1] == 8710 and len(answer) == 2 * 9 + 1
    assert np.array_equal(labels[prompt_len:], answer)


def test_official_world_model_sample_exact_layout(official: VocabLayout) -> None:
    b = official_builder(official, with_state=False)
    now, nxt = grids(2, seed=2), grids(2, seed=3)
    s = b.world_model_sample(now, np.zeros(7), nxt)
    ids, labels = s.input_ids, s.labels
    text = b.text_tokenizer.encode(WM_PROMPT)
    blk = image_block_length(4, 4)
    assert s.kind == "world_model" and ids[0] == 0 and ids[1 : 1 + len(text)].tolist() == text
    pos = 1 + len(text) + 2 * blk
    assert ids[pos] == 10004 and ids[pos + 8] == 15004 and ids[pos + 9] == 8710
    prompt_len = pos + 10
    assert np.all(labels[:prompt_len] == -100) and np.array_equal(labels[prompt_len:], ids[prompt_len:])
    assert ids[prompt_len] == 8197 and ids[-2] == 8196 and ids[-1] == 8710
    assert len(ids) == prompt_len + 2 * blk + 1
    got = b.decode_image_codes(ids[prompt_len:])
    assert len(got) == 2 and all(np.array_equal(g, w) for g, w in zip(got, nxt, strict=True))
    prompt = b.world_model_prompt(now, np.zeros((1, 7)))
    assert np.array_equal(prompt, ids[:prompt_len])


def test_round_trip_actions_within_half_bin_and_images(official: VocabLayout) -> None:
    b = official_builder(official)
    stats = libero_norm_stats()["action"]
    rng = np.random.default_rng(4)
    actions = rng.uniform(stats.min, stats.max, size=(10, 7))
    images = grids(2, side=16, seed=5)
    s = b.vla_sample("open the drawer", rng.uniform(-0.2, 0.2, 8), images, actions)
    back = b.decode_actions(s.input_ids[s.prompt_length :])
    assert back.shape == (10, 7)
    assert np.all(np.abs(back - actions) <= b.action_tokenizer.half_bin + 1e-12)
    codes = b.decode_image_codes(s.input_ids)
    assert len(codes) == 2 and all(np.array_equal(c, i) for c, i in zip(codes, images, strict=True))
    assert b.decode_state(s.input_ids).shape == (8,)


def test_decode_actions_rejects_malformed_blocks(official: VocabLayout) -> None:
    b = official_builder(official)
    good = b.action_blocks(np.zeros((2, 7)))
    truncated = good[:-3]
    with pytest.raises(ValueError, match="malformed action block at position 9"):
        b.decode_actions(truncated)
    assert b.decode_actions(truncated, strict=False).shape == (1, 7)
    bad = good.copy()
    bad[3] = 8710
    with pytest.raises(ValueError, match="non-value"):
        b.decode_actions(bad)
    wrong_end = good.copy()
    wrong_end[8] = 16004
    with pytest.raises(ValueError, match="expected action_end 15004"):
        b.decode_actions(wrong_end)
    assert b.decode_actions(np.array([0, 1, 2])).shape == (0, 7)


def test_bad_inputs_are_rejected(official: VocabLayout) -> None:
    b = official_builder(official, with_state=False)
    with pytest.raises(ValueError, match="no state tokenizer"):
        b.vla_prompt("task", np.zeros(8), grids(1))
    with pytest.raises(ValueError, match=r"shape \(K>=1, 7\)"):
        b.vla_sample("task", None, grids(1), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="at least one image"):
        b.vla_prompt("task", None, [])
    with pytest.raises(ValueError, match="non-empty string"):
        b.vla_prompt("", None, grids(1))
    with pytest.raises(ValueError, match="next images"):
        b.world_model_sample(grids(2), np.zeros(7), grids(1))
    with pytest.raises(ValueError, match="codes must lie in"):
        b.vla_prompt("task", None, [np.full((4, 4), 8192)])
    with pytest.raises(ValueError, match="action values start at 10006"):
        SequenceBuilder(official, FakeText(), BinTokenizer([0], [1], 10005), None)


def test_compact_layout_with_byte_text() -> None:
    layout = VocabLayout.compact(codebook_size=64)
    b = SequenceBuilder(
        layout, ByteTokenizer(layout), BinTokenizer(-np.ones(3), np.ones(3), layout.action_value_first), None
    )
    prompt = b.vla_prompt("stack", None, grids(1, side=2, codebook=64))
    text_ids = prompt[1 : 1 + len(VLA_PROMPT.format(task="stack"))]
    assert prompt[0] == layout.bos and prompt[-1] == layout.turn_sep
    assert b.text_tokenizer.decode(text_ids.tolist()) == "What action should the robot take to stack?"
    assert prompt.max() < layout.vocab_size


def test_pad_batch_pads_truncates_and_masks() -> None:
    a = TokenSample(np.array([0, 5, 6, 7]), np.array([-100, -100, 6, 7]), "vla")
    c = TokenSample(np.array([0, 9]), np.array([-100, 9]), "world_model")
    out = pad_batch([a, c], pad_id=0)
    assert out["input_ids"].tolist() == [[0, 5, 6, 7], [0, 9, 0, 0]]
    assert out["labels"].tolist() == [[-100, -100, 6, 7], [-100, 9, -100, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    cut = pad_batch([a, c], pad_id=1, max_len=3)
    assert cut["input_ids"].tolist() == [[0, 5, 6], [0, 9, 1]] and cut["lengths"].tolist() == [3, 2]
    with pytest.raises(ValueError, match="empty batch"):
        pad_batch([], pad_id=0)
    with pytest.raises(ValueError, match="equal length"):
        TokenSample(np.zeros(3), np.zeros(2), "vla")
    with pytest.raises(ValueError, match="kind"):
        TokenSample(np.zeros(2), np.zeros(2), "other")
