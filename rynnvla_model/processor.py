"""``RynnVLAProcessor``: everything between pixels/vectors and token ids, saved and loaded as one folder.

Folder layout written by :meth:`RynnVLAProcessor.save_pretrained`::

    processor_config.json   layout, image size, feature keys, prompt texts
    norm_stats.json         NormStats (bins use min/max of the action and state keys)
    byte_tokenizer.json     or text_tokenizer.json (Chameleon BPE)
    vqgan/config.json, vqgan/model.safetensors
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rynnvla_model.action_tokenizer import NORM_STATS_FILE, BinTokenizer, NormStats
from rynnvla_model.image_tokenizer import ImageTokenizer
from rynnvla_model.sequences import VLA_PROMPT, WM_PROMPT, SequenceBuilder, TokenSample
from rynnvla_model.text_tokenizer import (
    BYTE_TOKENIZER_FILE,
    CHAMELEON_TOKENIZER_FILE,
    ByteTokenizer,
    ChameleonTextTokenizer,
    load_text_tokenizer,
)
from rynnvla_model.vocab import VocabLayout
from rynnvla_model.vqgan import VQGAN, VQGANConfig, load_vqgan

PROCESSOR_CONFIG_FILE = "processor_config.json"
VQGAN_DIR = "vqgan"
OFFICIAL_TOKENIZER_FILES = (CHAMELEON_TOKENIZER_FILE, "vqgan.yaml", "vqgan.ckpt")


def _frames(frames: Any, what: str) -> list[Any]:
    if frames is None:
        return []
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        return [frames]
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        return list(frames)
    if isinstance(frames, (list, tuple)):
        return list(frames)
    raise ValueError(f"{what} must be an HxWx3 image, an (N, H, W, 3) array or a list of images")


class RynnVLAProcessor:
    """Text tokenizer + VQGAN image tokenizer + action/state bin tokenizers + :class:`SequenceBuilder`.

    The bins use the min/max of ``norm_stats[action_key]`` and ``norm_stats[state_key]``; when the stats have no
    ``state_key`` entry the processor has no state tokenizer and builds prompts without a state block.
    """

    def __init__(
        self,
        layout: VocabLayout,
        text_tokenizer: ByteTokenizer | ChameleonTextTokenizer,
        image_tokenizer: ImageTokenizer,
        norm_stats: NormStats,
        action_key: str = "action",
        state_key: str | None = "state",
        vla_template: str = VLA_PROMPT,
        world_model_text: str = WM_PROMPT,
    ) -> None:
        if image_tokenizer.layout != layout:
            raise ValueError("the image tokenizer was built for a different vocabulary layout")
        if action_key not in norm_stats:
            raise ValueError(f"norm stats have no {action_key!r} entry; available: {norm_stats.keys()}")
        if state_key is not None and state_key not in norm_stats:
            state_key = None  # no state statistics: prompts carry no state block (a given state raises)
        self.layout = layout
        self.text_tokenizer = text_tokenizer
        self.image_tokenizer = image_tokenizer
        self.norm_stats = norm_stats
        self.action_key = action_key
        self.state_key = state_key
        self.action_tokenizer = BinTokenizer.from_stats(norm_stats[action_key], layout.action_value_first)
        self.state_tokenizer = (
            BinTokenizer.from_stats(norm_stats[state_key], layout.state_value_first) if state_key else None
        )
        self.builder = SequenceBuilder(
            layout, text_tokenizer, self.action_tokenizer, self.state_tokenizer, vla_template, world_model_text
        )

    # ---------------------------------------------------------------- properties
    @property
    def vqgan(self) -> VQGAN:
        return self.image_tokenizer.vqgan

    @property
    def image_size(self) -> tuple[int, int]:
        return self.image_tokenizer.image_size

    @property
    def action_dim(self) -> int:
        return self.action_tokenizer.dim

    @property
    def state_dim(self) -> int | None:
        return None if self.state_tokenizer is None else self.state_tokenizer.dim

    def to(self, device: str | torch.device) -> RynnVLAProcessor:
        """Move the VQGAN to ``device``; returns self."""
        self.vqgan.to(device)
        return self

    # ---------------------------------------------------------------- pixels -> tokens
    def encode_images(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """(h, w) code grid of each uint8 HxWx3 image (one batched VQGAN pass)."""
        if len(images) == 0:
            return []
        return list(self.image_tokenizer.encode(images))

    def _interleave(self, front_frames: Any, wrist_frames: Any) -> list[Any]:
        front = _frames(front_frames, "front_frames")
        wrist = _frames(wrist_frames, "wrist_frames")
        if not front:
            raise ValueError("at least one front frame is required")
        if wrist and len(wrist) != len(front):
            raise ValueError(f"got {len(front)} front frames but {len(wrist)} wrist frames; expected equal counts")
        if not wrist:
            return front
        return [img for pair in zip(front, wrist, strict=True) for img in pair]

    def vla_prompt_from_images(
        self, task: str, state: np.ndarray | None, front_frames: Any, wrist_frames: Any = None
    ) -> np.ndarray:
        """VLA prompt from uint8 RGB frames, oldest first; interleaved front(t-1), wrist(t-1), front(t), wrist(t)."""
        codes = self.encode_images(self._interleave(front_frames, wrist_frames))
        return self.builder.vla_prompt(task, state, codes)

    def vla_sample_from_images(
        self, task: str, state: np.ndarray | None, front_frames: Any, wrist_frames: Any, actions: np.ndarray
    ) -> TokenSample:
        """VLA training sample from frames and a (K, A) action chunk."""
        codes = self.encode_images(self._interleave(front_frames, wrist_frames))
        return self.builder.vla_sample(task, state, codes, actions)

    def world_model_prompt_from_images(
        self, front: np.ndarray, wrist: np.ndarray | None, action: np.ndarray
    ) -> np.ndarray:
        """World-model prompt from the current front (and wrist) frame and one action."""
        codes = self.encode_images(self._interleave([front], None if wrist is None else [wrist]))
        return self.builder.world_model_prompt(codes, action)

    def world_model_sample_from_images(
        self,
        front: np.ndarray,
        wrist: np.ndarray | None,
        action: np.ndarray,
        next_front: np.ndarray,
        next_wrist: np.ndarray | None,
    ) -> TokenSample:
        """World-model training sample; the answer is the next front (and wrist) frame."""
        if (wrist is None) != (next_wrist is None):
            raise ValueError("give the wrist frame for both the current and the next step, or for neither")
        now = self._interleave([front], None if wrist is None else [wrist])
        nxt = self._interleave([next_front], None if next_wrist is None else [next_wrist])
        codes = self.encode_images(now + nxt)
        return self.builder.world_model_sample(codes[: len(now)], action, codes[len(now) :])

    # ---------------------------------------------------------------- tokens -> pixels / vectors
    def decode_images(self, ids: Any) -> list[np.ndarray]:
        """uint8 HxWx3 image of every image block in ``ids``."""
        grids = self.builder.decode_image_codes(ids)
        return [self.image_tokenizer.decode_codes(g) for g in grids]

    def decode_actions(self, ids: Any, strict: bool = True) -> np.ndarray:
        """(K, A) actions in physical units from the action blocks in ``ids``."""
        return self.builder.decode_actions(ids, strict=strict)

    # ---------------------------------------------------------------- persistence
    def config_dict(self) -> dict[str, Any]:
        """The contents of ``processor_config.json``."""
        return {
            "format_version": 1,
            "layout": self.layout.to_dict(),
            "image_size": list(self.image_size),
            "action_key": self.action_key,
            "state_key": self.state_key,
            "vla_template": self.builder.vla_template,
            "world_model_text": self.builder.world_model_text,
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the processor folder (see the module docstring); returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.norm_stats.save(directory / NORM_STATS_FILE)
        self.text_tokenizer.save(directory)
        self.vqgan.save(directory / VQGAN_DIR)
        text = json.dumps(self.config_dict(), indent=2) + "\n"
        (directory / PROCESSOR_CONFIG_FILE).write_text(text, encoding="utf-8")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> RynnVLAProcessor:
        """Load a folder written by :meth:`save_pretrained`; missing files raise FileNotFoundError naming them."""
        directory = Path(directory)
        needed = [directory / PROCESSOR_CONFIG_FILE, directory / NORM_STATS_FILE, directory / VQGAN_DIR]
        missing = [str(p) for p in needed if not p.exists()]
        if not (directory / BYTE_TOKENIZER_FILE).is_file() and not (directory / CHAMELEON_TOKENIZER_FILE).is_file():
            missing.append(f"{directory / BYTE_TOKENIZER_FILE} or {directory / CHAMELEON_TOKENIZER_FILE}")
        if missing:
            raise FileNotFoundError(f"incomplete processor folder {directory}: missing {', '.join(missing)}")
        cfg_path = directory / PROCESSOR_CONFIG_FILE
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            layout = VocabLayout.from_dict(cfg["layout"])
            image_size = tuple(int(s) for s in cfg["image_size"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{cfg_path} is not a valid processor config: {exc!r}") from exc
        text_tokenizer = load_text_tokenizer(directory, layout)
        if isinstance(text_tokenizer, ChameleonTextTokenizer) and text_tokenizer.layout() != layout:
            raise ValueError(f"{directory / CHAMELEON_TOKENIZER_FILE} disagrees with the layout in {cfg_path}")
        vqgan = load_vqgan(directory / VQGAN_DIR, device=device)
        return cls(
            layout,
            text_tokenizer,
            ImageTokenizer(vqgan, layout, image_size),
            NormStats.load(directory / NORM_STATS_FILE),
            action_key=cfg.get("action_key", "action"),
            state_key=cfg.get("state_key", "state"),
            vla_template=cfg.get("vla_template", VLA_PROMPT),
            world_model_text=cfg.get("world_model_text", WM_PROMPT),
        )

    @classmethod
    def from_official(
        cls,
        tokenizer_dir: str | Path,
        norm_stats: str | Path | NormStats,
        image_size: int = 256,
        device: str | torch.device = "cpu",
        state_key: str | None = "state",
    ) -> RynnVLAProcessor:
        """Same as :func:`processor_for_official`."""
        return processor_for_official(tokenizer_dir, norm_stats, image_size, device, state_key)


def processor_for_official(
    tokenizer_dir: str | Path,
    norm_stats: str | Path | NormStats,
    image_size: int = 256,
    device: str | torch.device = "cpu",
    state_key: str | None = "state",
) -> RynnVLAProcessor:
    """Processor over the official tokenizer folder (``text_tokenizer.json``, ``vqgan.yaml``, ``vqgan.ckpt``).

    ``norm_stats`` is a NormStats or the path of a ``norm_stats.json`` (e.g. ``libero_norm_stats()`` saved to disk).
    """
    tokenizer_dir = Path(tokenizer_dir)
    missing = [str(tokenizer_dir / name) for name in OFFICIAL_TOKENIZER_FILES if not (tokenizer_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the official tokenizer folder {tokenizer_dir} is incomplete: missing {', '.join(missing)} "
            "(download chameleon/tokenizer from Alibaba-DAMO-Academy/WorldVLA)"
        )
    stats = norm_stats if isinstance(norm_stats, NormStats) else NormStats.load(norm_stats)
    text_tokenizer = ChameleonTextTokenizer(tokenizer_dir / CHAMELEON_TOKENIZER_FILE)
    layout = text_tokenizer.layout()
    config = VQGANConfig.from_yaml(tokenizer_dir / "vqgan.yaml")
    vqgan = load_vqgan(tokenizer_dir / "vqgan.ckpt", config=config, device=device)
    return RynnVLAProcessor(
        layout, text_tokenizer, ImageTokenizer(vqgan, layout, image_size), stats, state_key=state_key
    )


def processor_for_compact(
    vqgan: VQGAN,
    norm_stats: NormStats,
    image_size: int = 256,
    max_grid: int = 32,
    state_key: str | None = "state",
) -> RynnVLAProcessor:
    """Processor with a compact vocabulary (byte text, the VQGAN's codebook) for small CPU models."""
    layout = VocabLayout.compact(codebook_size=vqgan.config.n_embed, max_grid=max_grid)
    image_tokenizer = ImageTokenizer(vqgan, layout, image_size)
    return RynnVLAProcessor(layout, ByteTokenizer(layout), image_tokenizer, norm_stats, state_key=state_key)
