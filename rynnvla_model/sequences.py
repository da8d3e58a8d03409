"""Token sequences of RynnVLA-002: VLA and world-model samples, prompts, decoding and batching.

Formats (official conversation template: no role strings, every turn ends with the turn separator):

* VLA: ``[BOS] text("What action should the robot take to {task}?") [state block] image blocks [SEP]`` then the
  answer ``K action blocks [SEP]``. Image blocks are interleaved per timestep: front(t-1), wrist(t-1), front(t),
  wrist(t).
* World model: ``[BOS] text(WM_PROMPT) front(t) wrist(t) action(t) [SEP]`` then ``front(t+1) wrist(t+1) [SEP]``.

Labels are -100 over the prompt and equal to the ids over the answer, its trailing separator included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rynnvla_model.action_tokenizer import BinTokenizer
from rynnvla_model.image_tokenizer import find_image_blocks, image_block, parse_image_block
from rynnvla_model.text_tokenizer import TextTokenizer
from rynnvla_model.vocab import VocabLayout

VLA_PROMPT = "What action should the robot take to {task}?"
WM_PROMPT = "Generate the next image based on the provided sequence of historical images and corresponding actions."
WM_EVAL_PROMPT = "Generate the image based on the current image and the action."
"""Text of the release's world-model *evaluation* prompt (differs from the training text :data:`WM_PROMPT`)."""

IGNORE_INDEX = -100
KINDS = ("vla", "world_model")


@dataclass
class TokenSample:
    """One training sequence."""

    input_ids: np.ndarray  # int64 (L,)
    labels: np.ndarray  # int64 (L,), -100 where not supervised
    kind: str  # "vla" or "world_model"

    def __post_init__(self) -> None:
        self.input_ids = np.asarray(self.input_ids, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.input_ids.ndim != 1 or self.input_ids.shape != self.labels.shape:
            raise ValueError(
                f"input_ids and labels must be 1-D of equal length, got {self.input_ids.shape} and {self.labels.shape}"
            )
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def prompt_length(self) -> int:
        """Number of leading unsupervised tokens."""
        supervised = np.flatnonzero(self.labels != IGNORE_INDEX)
        return int(supervised[0]) if supervised.size else len(self)


def _ids(values: list[Any]) -> np.ndarray:
    parts = [np.atleast_1d(np.asarray(v, dtype=np.int64)) for v in values]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class SequenceBuilder:
    """Builds and parses the token sequences for one vocabulary layout."""

    def __init__(
        self,
        layout: VocabLayout,
        text_tokenizer: TextTokenizer,
        action_tokenizer: BinTokenizer,
        state_tokenizer: BinTokenizer | None,
        vla_template: str = VLA_PROMPT,
        world_model_text: str = WM_PROMPT,
    ) -> None:
        if action_tokenizer.value_first_id != layout.action_value_first:
            raise ValueError(
                f"action tokenizer starts at id {action_tokenizer.value_first_id}, "
                f"the layout's action values start at {layout.action_value_first}"
            )
        if state_tokenizer is not None and state_tokenizer.value_first_id != layout.state_value_first:
            raise ValueError(
                f"state tokenizer starts at id {state_tokenizer.value_first_id}, "
                f"the layout's state values start at {layout.state_value_first}"
            )
        if "{task}" not in vla_template:
            raise ValueError(f"the VLA template must contain '{{task}}', got {vla_template!r}")
        self.layout = layout
        self.text_tokenizer = text_tokenizer
        self.action_tokenizer = action_tokenizer
        self.state_tokenizer = state_tokenizer
        self.vla_template = vla_template
        self.world_model_text = world_model_text

    # ---------------------------------------------------------------- blocks
    def action_block(self, action: Any) -> np.ndarray:
        """``[action_start, A value ids, action_end]`` of one action vector."""
        arr = np.asarray(action, dtype=np.float64)
        if arr.shape != (self.action_tokenizer.dim,):
            raise ValueError(f"an action must have shape ({self.action_tokenizer.dim},), got {arr.shape}")
        return _ids([self.layout.action_start, self.action_tokenizer.encode(arr), self.layout.action_end])

    def action_blocks(self, actions: Any) -> np.ndarray:
        """Concatenated action blocks of a (K, A) chunk."""
        arr = np.asarray(actions, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != self.action_tokenizer.dim:
            raise ValueError(f"actions must have shape (K>=1, {self.action_tokenizer.dim}), got {arr.shape}")
        return _ids([self.action_block(a) for a in arr])

    def state_block(self, state: Any) -> np.ndarray:
        """``[state_start, S value ids, state_end]``."""
        if self.state_tokenizer is None:
            raise ValueError("a state was given but this builder has no state tokenizer")
        arr = np.asarray(state, dtype=np.float64)
        if arr.shape != (self.state_tokenizer.dim,):
            raise ValueError(f"the state must have shape ({self.state_tokenizer.dim},), got {arr.shape}")
        return _ids([self.layout.state_start, self.state_tokenizer.encode(arr), self.layout.state_end])

    def image_blocks(self, image_codes: list[np.ndarray]) -> np.ndarray:
        """Concatenated image blocks of a list of (h, w) code grids."""
        if isinstance(image_codes, np.ndarray) and image_codes.ndim == 2:
            raise ValueError("image_codes must be a list of (h, w) grids, got a single grid")
        if len(image_codes) == 0:
            raise ValueError("at least one image is required")
        return _ids([image_block(self.layout, c) for c in image_codes])

    def text(self, text: str) -> np.ndarray:
        """Text ids (no BOS)."""
        return np.asarray(self.text_tokenizer.encode(text), dtype=np.int64)

    # ---------------------------------------------------------------- VLA
    def vla_prompt(self, task: str, state: np.ndarray | None, image_codes: list[np.ndarray]) -> np.ndarray:
        """``[BOS] text [state block] image blocks [SEP]``: the prompt the model answers with action blocks."""
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"task must be a non-empty string, got {task!r}")
        parts: list[Any] = [self.layout.bos, self.text(self.vla_template.format(task=task))]
        if state is not None:
            parts.append(self.state_block(state))
        parts += [self.image_blocks(image_codes), self.layout.turn_sep]
        return _ids(parts)

    def vla_answer(self, actions: Any) -> np.ndarray:
        """``K action blocks [SEP]``."""
        return _ids([self.action_blocks(actions), self.layout.turn_sep])

    def vla_sample(
        self, task: str, state: np.ndarray | None, image_codes: list[np.ndarray], actions: np.ndarray
    ) -> TokenSample:
        """A supervised VLA sample: the prompt plus the (K, A) action chunk as answer."""
        return self._sample(self.vla_prompt(task, state, image_codes), self.vla_answer(actions), "vla")

    # ---------------------------------------------------------------- world model
    def world_model_prompt(self, image_codes: list[np.ndarray], action: np.ndarray) -> np.ndarray:
        """``[BOS] text image blocks (front(t), wrist(t)) action block [SEP]``."""
        arr = np.asarray(action, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        parts = [self.layout.bos, self.text(self.world_model_text), self.image_blocks(image_codes)]
        return _ids([*parts, self.action_block(arr), self.layout.turn_sep])

    def world_model_sample(
        self, image_codes: list[np.ndarray], action: np.ndarray, next_image_codes: list[np.ndarray]
    ) -> TokenSample:
        """A supervised world-model sample: the answer is the next images' blocks and ``[SEP]``."""
        if len(next_image_codes) != len(image_codes):
            raise ValueError(f"expected {len(image_codes)} next images (one per view), got {len(next_image_codes)}")
        answer = _ids([self.image_blocks(next_image_codes), self.layout.turn_sep])
        return self._sample(self.world_model_prompt(image_codes, action), answer, "world_model")

    @staticmethod
    def _sample(prompt: np.ndarray, answer: np.ndarray, kind: str) -> TokenSample:
        labels = np.concatenate([np.full(prompt.shape, IGNORE_INDEX, dtype=np.int64), answer])
        return TokenSample(np.concatenate([prompt, answer]), labels, kind)

    # ---------------------------------------------------------------- decoding
    def action_block_spans(self, ids: Any, strict: bool = True) -> list[tuple[int, int]]:
        """``(start, stop)`` of each well-formed action block ``[action_start, A values, action_end]`` in ``ids``.

        With ``strict`` a malformed block raises ValueError; otherwise scanning stops at the first malformed block
        (as the release's evaluation does).
        """
        arr = np.asarray(ids).reshape(-1)
        dim = self.action_tokenizer.dim
        spans = []
        for s in np.flatnonzero(arr == self.layout.action_start):
            s = int(s)
            stop = s + dim + 2
            problem = None
            if stop > arr.size:
                problem = f"the sequence ends {stop - arr.size} token(s) before the block is complete"
            elif arr[stop - 1] != self.layout.action_end:
                problem = f"token {stop - 1} is {int(arr[stop - 1])}, expected action_end {self.layout.action_end}"
            elif not np.all(self.action_tokenizer.is_value(arr[s + 1 : stop - 1])):
                problem = f"it holds non-value ids {arr[s + 1 : stop - 1].tolist()}"
            if problem is not None:
                if strict:
                    raise ValueError(f"malformed action block at position {s} (expected {dim} values): {problem}")
                break
            spans.append((s, stop))
        return spans

    def decode_actions(self, ids: Any, strict: bool = True) -> np.ndarray:
        """(K, A) actions in physical units (bin centres) from the action blocks in ``ids`` (K may be 0)."""
        arr = np.asarray(ids).reshape(-1)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got dtype {arr.dtype}")
        spans = self.action_block_spans(arr, strict=strict)
        if not spans:
            return np.zeros((0, self.action_tokenizer.dim), dtype=np.float64)
        values = np.stack([arr[s + 1 : e - 1] for s, e in spans])
        return self.action_tokenizer.decode(values)

    def decode_image_codes(self, ids: Any) -> list[np.ndarray]:
        """(h, w) code grid of every image block in ``ids``; a malformed block raises ValueError."""
        arr = np.asarray(ids).reshape(-1)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got dtype {arr.dtype}")
        return [parse_image_block(self.layout, arr[s:e]) for s, e in find_image_blocks(self.layout, arr)]

    def decode_state(self, ids: Any) -> np.ndarray | None:
        """The state in physical units from the first state block in ``ids``, or None when there is none."""
        if self.state_tokenizer is None:
            raise ValueError("this builder has no state tokenizer")
        arr = np.asarray(ids).reshape(-1)
        starts = np.flatnonzero(arr == self.layout.state_start)
        if starts.size == 0:
            return None
        s = int(starts[0])
        stop = s + self.state_tokenizer.dim + 2
        if stop > arr.size or arr[stop - 1] != self.layout.state_end:
            raise ValueError(f"malformed state block at position {s}")
        return self.state_tokenizer.decode(arr[s + 1 : stop - 1])


def pad_batch(samples: list[TokenSample], pad_id: int, max_len: int | None = None) -> dict[str, np.ndarray]:
    """Right-pad (and truncate to ``max_len``) a list of samples.

    Returns ``input_ids`` (padded with ``pad_id``), ``labels`` (padded with -100), ``attention_mask`` (1 for real
    tokens, 0 for padding) and ``lengths`` (real tokens per row after truncation), all int64.
    """
    if not samples:
        raise ValueError("cannot pad an empty batch")
    if max_len is not None and max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    lengths = np.array([len(s) for s in samples], dtype=np.int64)
    if max_len is not None:
        lengths = np.minimum(lengths, max_len)
    width = int(lengths.max())
    input_ids = np.full((len(samples), width), pad_id, dtype=np.int64)
    labels = np.full((len(samples), width), IGNORE_INDEX, dtype=np.int64)
    attention_mask = np.zeros((len(samples), width), dtype=np.int64)
    for row, (sample, n) in enumerate(zip(samples, lengths, strict=True)):
        input_ids[row, :n] = sample.input_ids[:n]
        labels[row, :n] = sample.labels[:n]
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask, "lengths": lengths}
