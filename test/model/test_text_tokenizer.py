"""Text tokenizers: UTF-8 bytes for compact layouts and Chameleon's BPE file with its IMGIMG image-code names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rynnvla_model.text_tokenizer import (
    ByteTokenizer,
    ChameleonTextTokenizer,
    TextTokenizer,
    image_code_of_name,
    load_text_tokenizer,
)
from rynnvla_model.vocab import VocabLayout

WORDS = ["What", "action", "should", "the", "robot", "take", "to", "pick", "up", "bowl", "?"]


def image_name(code: int) -> str:
    """Chameleon's naming: digits written as letters A..J, then one trailing character."""
    return "IMGIMG" + "".join(chr(ord("A") + int(d)) for d in str(code)) + "Z"


def write_fake_chameleon(directory: Path, n_codes: int = 8192, seed: int = 0, rename: dict | None = None) -> Path:
    """A WordLevel tokenizer with Chameleon's id layout: specials, shuffled IMGIMG names at 4.., reserved tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    codes = np.random.default_rng(seed).permutation(n_codes)
    vocab.update({image_name(int(c)): 4 + i for i, c in enumerate(codes)})
    vocab.update({"<eoss>": 8196, "<racm3:break>": 8197})
    vocab.update({f"<reserved{i - 4:05d}>": i for i in range(8198, 16100)})
    vocab.update({w: 16100 + i for i, w in enumerate(WORDS)})
    for old, new in (rename or {}).items():
        vocab[new] = vocab.pop(old)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "text_tokenizer.json"
    tok.save(str(path))
    return path


def test_image_code_of_name() -> None:
    assert image_code_of_name("IMGIMGBCDZ") == 123
    assert image_code_of_name("IMGIMGAZ") == 0
    assert image_code_of_name(image_name(8191)) == 8191
    with pytest.raises(ValueError, match="not an image token name"):
        image_code_of_name("<reserved08706>")
    with pytest.raises(ValueError, match="does not encode a number"):
        image_code_of_name("IMGIMGKZ")


def test_small_vocabulary_maps_imgimg_names(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models

    vocab = {"<unk>": 0, "IMGIMGBCDZ": 7, "IMGIMGAZ": 9, "IMGIMGJJY": 4, "hello": 5}
    Tokenizer(models.WordLevel(vocab, unk_token="<unk>")).save(str(tmp_path / "text_tokenizer.json"))
    tok = ChameleonTextTokenizer(tmp_path)
    assert tok.image_code_table() == {123: 7, 0: 9, 99: 4}
    with pytest.raises(ValueError, match=r"expected IMGIMG names for codes 0\.\.8191, found 3"):
        tok.layout()


def test_full_fake_chameleon_builds_the_official_layout(tmp_path: Path) -> None:
    path = write_fake_chameleon(tmp_path)
    tok = ChameleonTextTokenizer(path)
    assert isinstance(tok, TextTokenizer)
    layout = tok.layout()
    vocab = json.loads(path.read_text())["model"]["vocab"]
    assert layout.name == "official" and layout.turn_sep == 8710
    for code in (0, 1, 4095, 8191):
        assert layout.image_code_ids[code] == vocab[image_name(code)]
    assert sorted(layout.image_code_ids) == list(range(4, 8196))
    ids = tok.encode("What action should the robot take to pick up the bowl?")
    words = ["What", "action", "should", "the", "robot", "take", "to", "pick", "up", "the", "bowl", "?"]
    assert ids == [16100 + WORDS.index(w) for w in words]  # no BOS added
    assert tok.decode(ids[:3]) == "What action should"
    assert isinstance(load_text_tokenizer(tmp_path, layout), ChameleonTextTokenizer)


def test_wrong_reserved_names_are_reported(tmp_path: Path) -> None:
    write_fake_chameleon(tmp_path, rename={"<reserved08706>": "<something>"})
    with pytest.raises(ValueError, match="id 8710: expected '<reserved08706>'"):
        ChameleonTextTokenizer(tmp_path).layout()


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "text_tokenizer.json"))):
        ChameleonTextTokenizer(tmp_path)
    (tmp_path / "text_tokenizer.json").write_text("{broken")
    with pytest.raises(ValueError, match="not a valid tokenizers JSON"):
        ChameleonTextTokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"byte_tokenizer\.json and text_tokenizer\.json"):
        load_text_tokenizer(tmp_path / "empty", VocabLayout.compact(16))


def test_byte_tokenizer_round_trip_and_persistence(tmp_path: Path) -> None:
    layout = VocabLayout.compact(codebook_size=16)
    tok = ByteTokenizer(layout)
    text = "Place the strawberries into the cup.? é"
    ids = tok.encode(text)
    assert len(ids) == len(text.encode("utf-8")) and min(ids) >= layout.text_byte_first
    assert ids[0] == layout.text_byte_first + ord("P")
    assert tok.decode(ids) == text
    tok.save(tmp_path)
    again = load_text_tokenizer(tmp_path, layout)
    assert isinstance(again, ByteTokenizer) and again.encode(text) == ids
    with pytest.raises(ValueError, match="not a text byte"):
        tok.decode([layout.action_value_first])
    with pytest.raises(ValueError, match="no byte range"):
        ByteTokenizer(VocabLayout.official(4 + np.arange(8192)))
    other = VocabLayout.compact(codebook_size=16, max_grid=8)
    with pytest.raises(ValueError, match="text_byte_first"):
        ByteTokenizer.load(tmp_path, other)
