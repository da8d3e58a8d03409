"""Text tokenizers: Chameleon's BPE for the official vocabulary, UTF-8 bytes for compact layouts.

Neither adds BOS: sequence builders put ``layout.bos`` in front themselves. Media placeholders (``<|image|>`` ...)
are not needed because builders splice token blocks directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from rynnvla_model.vocab import VocabLayout

CHAMELEON_TOKENIZER_FILE = "text_tokenizer.json"
"""File name of Chameleon's tokenizer in the official tokenizer folder."""

BYTE_TOKENIZER_FILE = "byte_tokenizer.json"
"""File name written by :meth:`ByteTokenizer.save`."""

IMAGE_NAME_PREFIX = "IMGIMG"

OFFICIAL_TOKEN_NAMES = {
    8196: "<eoss>",
    8197: "<racm3:break>",
    8710: "<reserved08706>",
    8803: "<reserved08799>",
    8812: "<reserved08808>",
    8820: "<reserved08816>",
    10004: "<reserved10000>",
    15004: "<reserved15000>",
    15504: "<reserved15500>",
    16004: "<reserved16000>",
}
"""Names the release looks up for the hard-coded ids of :meth:`VocabLayout.official` (checked on load)."""


@runtime_checkable
class TextTokenizer(Protocol):
    """What sequence builders need from a text tokenizer."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes -> ``layout.text_byte_first + byte``; self-contained, for compact layouts."""

    def __init__(self, layout: VocabLayout) -> None:
        if layout.text_byte_first is None:
            raise ValueError(f"layout {layout.name!r} has no byte range (text_byte_first is None)")
        self.byte_first = int(layout.text_byte_first)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        return [self.byte_first + b for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of byte ids; ids outside the byte range raise ValueError, invalid UTF-8 is replaced."""
        out = bytearray()
        for i in ids:
            b = int(i) - self.byte_first
            if not 0 <= b < 256:
                raise ValueError(
                    f"id {int(i)} is not a text byte (expected {self.byte_first}..{self.byte_first + 255})"
                )
            out.append(b)
        return out.decode("utf-8", errors="replace")

    def save(self, directory: str | Path) -> Path:
        """Write ``byte_tokenizer.json`` into ``directory``; returns the file."""
        path = Path(directory) / BYTE_TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"type": "byte", "text_byte_first": self.byte_first}) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path, layout: VocabLayout) -> ByteTokenizer:
        """Read ``byte_tokenizer.json`` and check it matches ``layout``."""
        path = Path(directory) / BYTE_TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"byte tokenizer not found: looked for {path}")
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("type") != "byte" or "text_byte_first" not in data:
            raise ValueError(f"{path} is not a byte tokenizer file: {data}")
        if data["text_byte_first"] != layout.text_byte_first:
            raise ValueError(
                f"{path} has text_byte_first {data['text_byte_first']} but the layout has {layout.text_byte_first}"
            )
        return cls(layout)


def image_code_of_name(name: str) -> int:
    """VQ code of an ``IMGIMG...`` vocabulary name: drop the prefix and the last char, map A..J to 0..9."""
    if not name.startswith(IMAGE_NAME_PREFIX) or len(name) < len(IMAGE_NAME_PREFIX) + 2:
        raise ValueError(f"{name!r} is not an image token name ({IMAGE_NAME_PREFIX}<letters><suffix>)")
    body = name[len(IMAGE_NAME_PREFIX) : -1]
    digits = [str(ord(c) - ord("A")) if "A" <= c <= "J" else c for c in body]
    number = "".join(digits)
    if not number.isdigit():
        raise ValueError(f"image token name {name!r} does not encode a number (letters A..J expected)")
    return int(number)


class ChameleonTextTokenizer:
    """Chameleon's BPE from a local ``text_tokenizer.json`` (the official ``chameleon/tokenizer`` folder)."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer

        path = Path(path)
        if path.is_dir():
            path = path / CHAMELEON_TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"Chameleon text tokenizer not found: looked for {path}")
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(f"{path} is not a valid tokenizers JSON file: {exc}") from exc
        self.path = path

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS, no special tokens added)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (special tokens skipped)."""
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def vocab(self) -> dict[str, int]:
        """Name -> id of the whole vocabulary, added tokens included."""
        return self._tokenizer.get_vocab(with_added_tokens=True)

    def image_code_table(self) -> dict[int, int]:
        """VQ code -> token id, from every vocabulary name starting with ``IMGIMG``."""
        table: dict[int, int] = {}
        for name, tok in self.vocab().items():
            if name.startswith(IMAGE_NAME_PREFIX):
                code = image_code_of_name(name)
                if code in table and table[code] != tok:
                    raise ValueError(f"image code {code} is named twice (ids {table[code]} and {tok})")
                table[code] = tok
        return table

    def layout(self) -> VocabLayout:
        """The official layout with this vocabulary's image-code table; checks the release's reserved names."""
        table = self.image_code_table()
        missing = [c for c in range(8192) if c not in table]
        if missing or len(table) != 8192:
            raise ValueError(
                f"{self.path}: expected IMGIMG names for codes 0..8191, found {len(table)} "
                f"(missing e.g. {missing[:5]}, extra e.g. {sorted(set(table) - set(range(8192)))[:5]})"
            )
        id_to_name = {tok: name for name, tok in self.vocab().items()}
        wrong = {
            tok: (want, id_to_name.get(tok))
            for tok, want in OFFICIAL_TOKEN_NAMES.items()
            if id_to_name.get(tok) != want
        }
        if wrong:
            detail = ", ".join(f"id {tok}: expected {w!r}, found {f!r}" for tok, (w, f) in wrong.items())
            raise ValueError(f"{self.path} does not match the official RynnVLA-002 token ids: {detail}")
        return VocabLayout.official([table[c] for c in range(8192)])

    def save(self, directory: str | Path) -> Path:
        """Write ``text_tokenizer.json`` into ``directory``; returns the file."""
        path = Path(directory) / CHAMELEON_TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tokenizer.save(str(path))
        return path


def load_text_tokenizer(directory: str | Path, layout: VocabLayout) -> ByteTokenizer | ChameleonTextTokenizer:
    """The tokenizer saved in ``directory``: ``byte_tokenizer.json`` or ``text_tokenizer.json``."""
    directory = Path(directory)
    if (directory / BYTE_TOKENIZER_FILE).is_file():
        return ByteTokenizer.load(directory, layout)
    if (directory / CHAMELEON_TOKENIZER_FILE).is_file():
        if layout.text_byte_first is not None:
            raise ValueError(f"{directory} holds a Chameleon tokenizer but the layout {layout.name!r} is byte-based")
        return ChameleonTextTokenizer(directory / CHAMELEON_TOKENIZER_FILE)
    raise FileNotFoundError(
        f"no text tokenizer in {directory}: looked for {BYTE_TOKENIZER_FILE} and {CHAMELEON_TOKENIZER_FILE}"
    )
