"""Images <-> VQ code grids <-> token blocks.

A block is ``[image_start, grid(h), grid(w), codes of row 0, row_end, ..., codes of row h-1, row_end, image_end]``
where ``h, w`` are the latent grid sides and ``grid(n)`` counts 32-pixel patches (``n / 2``). A 256 px image with
16x downsampling gives 16 x 17 + 4 = 276 tokens; a 512 px image gives 32 x 33 + 4 = 1060.

Pixels go in as uint8 RGB and are scaled to ``RGB / 255 * 2 - 1`` (no mean/std), as in the release. Images must
already have the tokenizer's size: use :func:`resize` explicitly to squash them, nothing is resized silently.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rynnvla_model.vocab import VocabLayout

if TYPE_CHECKING:
    from rynnvla_model.vqgan import VQGAN


def image_block_length(h: int, w: int) -> int:
    """Number of tokens of the block of an ``h x w`` latent grid."""
    return h * (w + 1) + 4


def image_block(layout: VocabLayout, codes: Any) -> np.ndarray:
    """Token block (int64) of one latent code grid ``codes`` of shape (h, w)."""
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"image codes must be a non-empty (h, w) grid, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"image codes must be integers, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= layout.codebook_size:
        raise ValueError(f"image codes must lie in 0..{layout.codebook_size - 1}, got range {arr.min()}..{arr.max()}")
    h, w = arr.shape
    rows = np.empty((h, w + 1), dtype=np.int64)
    rows[:, :w] = layout.image_ids()[arr]
    rows[:, w] = layout.row_end
    head = [layout.image_start, layout.grid_token(h), layout.grid_token(w)]
    return np.concatenate([np.asarray(head, dtype=np.int64), rows.reshape(-1), [layout.image_end]]).astype(np.int64)


def parse_image_block(layout: VocabLayout, ids: Any) -> np.ndarray:
    """Inverse of :func:`image_block`: the (h, w) int64 code grid; a malformed block raises ValueError."""
    arr = np.asarray(ids)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"an image block must be a 1-D integer sequence, got shape {arr.shape} dtype {arr.dtype}")
    if arr.size < 5:
        raise ValueError(f"an image block needs at least 5 tokens, got {arr.size}")
    if arr[0] != layout.image_start or arr[-1] != layout.image_end:
        raise ValueError(
            f"an image block must start with {layout.image_start} and end with {layout.image_end}, "
            f"got {int(arr[0])} ... {int(arr[-1])}"
        )
    sides = []
    for name, tok in (("height", int(arr[1])), ("width", int(arr[2]))):
        n = tok - layout.grid_base
        if not 0 < n <= layout.max_grid:
            raise ValueError(
                f"grid {name} token {tok} is not in {layout.grid_base + 1}..{layout.grid_base + layout.max_grid}"
            )
        sides.append(2 * n)
    h, w = sides
    if arr.size != image_block_length(h, w):
        raise ValueError(
            f"an image block of a {h}x{w} latent grid has {image_block_length(h, w)} tokens, got {arr.size}"
        )
    rows = arr[3:-1].reshape(h, w + 1)
    if np.any(rows[:, w] != layout.row_end):
        bad = int(np.flatnonzero(rows[:, w] != layout.row_end)[0])
        raise ValueError(f"row {bad} of the image block does not end with row_end {layout.row_end}")
    lookup = _code_lookup(layout)
    body = rows[:, :w].astype(np.int64)
    inside = (body >= 0) & (body < lookup.size)
    codes = np.full(body.shape, -1, dtype=np.int64)
    codes[inside] = lookup[body[inside]]
    if np.any(codes < 0):
        bad_ids = sorted(set(body[codes < 0].tolist()))[:8]
        raise ValueError(f"image block contains ids that are not image codes: {bad_ids}")
    return codes


@functools.lru_cache(maxsize=8)
def _code_lookup(layout: VocabLayout) -> np.ndarray:
    """Dense id -> code table (-1 for ids that are not image codes)."""
    ids = layout.image_ids()
    table = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
    table[ids] = np.arange(ids.size)
    table.setflags(write=False)
    return table


def find_image_blocks(layout: VocabLayout, ids: Any) -> list[tuple[int, int]]:
    """``(start, stop)`` slices of every ``image_start ... image_end`` span; an unclosed start raises ValueError."""
    arr = np.asarray(ids).reshape(-1)
    spans = []
    pos = 0
    starts = np.flatnonzero(arr == layout.image_start)
    for s in starts:
        if s < pos:
            raise ValueError(f"image start at {int(s)} lies inside the image block ending at {pos - 1}")
        ends = np.flatnonzero(arr[s + 1 :] == layout.image_end)
        if ends.size == 0:
            raise ValueError(f"image block starting at {int(s)} is not closed by image_end {layout.image_end}")
        stop = int(s + 1 + ends[0] + 1)
        spans.append((int(s), stop))
        pos = stop
    return spans


def to_uint8_rgb(image: Any) -> np.ndarray:
    """Validate one HxWx3 uint8 RGB array (PIL images are converted)."""
    if hasattr(image, "convert") and not isinstance(image, np.ndarray):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"an image must be an HxWx3 RGB array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"an image must be uint8, got dtype {arr.dtype}")
    return arr


def resize(image: Any, size: int | tuple[int, int]) -> np.ndarray:
    """Squash an HxWx3 uint8 image to ``size`` (int or (height, width)) without keeping the aspect ratio.

    The one resize of the project: the converters write training frames with it and the nodes squash camera images
    with it, so a model sees the same pixels in training and deployment. OpenCV's area averaging when shrinking
    (anti-aliased), bilinear when enlarging.
    """
    import cv2

    arr = to_uint8_rgb(image)
    h, w = (size, size) if isinstance(size, int) else size
    if h <= 0 or w <= 0:
        raise ValueError(f"target size must be positive, got {size}")
    if arr.shape[:2] == (h, w):
        return arr.copy()
    shrink = h * w < arr.shape[0] * arr.shape[1]
    return cv2.resize(arr, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def pixels_from_uint8(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1] (``x / 255 * 2 - 1``)."""
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return t / 255.0 * 2.0 - 1.0


def uint8_from_pixels(pixels: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8 (clamped, rounded)."""
    x = (pixels.detach().float().clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class ImageTokenizer:
    """Turns uint8 RGB images of one fixed size into token blocks and back, through a VQGAN."""

    def __init__(self, vqgan: VQGAN, layout: VocabLayout, image_size: int | tuple[int, int]) -> None:
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        factor = vqgan.config.downsample_factor
        if h % factor or w % factor:
            raise ValueError(f"image size {h}x{w} must be a multiple of the VQGAN downsampling factor {factor}")
        self.latent_shape = (h // factor, w // factor)
        for side in self.latent_shape:
            layout.grid_token(side)  # raises when the grid does not fit the layout
        if vqgan.config.n_embed > layout.codebook_size:
            raise ValueError(
                f"the VQGAN has {vqgan.config.n_embed} codes but the layout maps only {layout.codebook_size}"
            )
        self.vqgan = vqgan
        self.layout = layout
        self.image_size = (h, w)

    @property
    def block_length(self) -> int:
        """Tokens per image block."""
        return image_block_length(*self.latent_shape)

    @property
    def device(self) -> torch.device:
        return next(self.vqgan.parameters()).device

    def _stack(self, images: Any) -> np.ndarray:
        if isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray) and images.ndim == 4):
            seq = list(images)
        else:
            seq = [images]
        if not seq:
            raise ValueError("no images given")
        checked = [to_uint8_rgb(img) for img in seq]
        for img in checked:
            if img.shape[:2] != self.image_size:
                raise ValueError(
                    f"expected images of {self.image_size[0]}x{self.image_size[1]} pixels, got "
                    f"{img.shape[0]}x{img.shape[1]}; call resize(...) explicitly to squash them"
                )
        return np.stack(checked)

    @torch.no_grad()
    def encode(self, images: Any) -> np.ndarray:
        """Code grids (N, h, w) int64 of a list / (N, H, W, 3) array of uint8 images."""
        batch = self._stack(images)
        dtype = next(self.vqgan.parameters()).dtype
        pixels = pixels_from_uint8(batch).to(device=self.device, dtype=dtype)
        return self.vqgan.encode(pixels).cpu().numpy().astype(np.int64)

    def tokenize(self, image: Any) -> np.ndarray:
        """Token block of one uint8 image."""
        return image_block(self.layout, self.encode([image])[0])

    @torch.no_grad()
    def decode_codes(self, codes: Any) -> np.ndarray:
        """uint8 images (N, H, W, 3) from code grids (N, h, w) (or one (h, w) grid -> (H, W, 3))."""
        arr = np.asarray(codes)
        single = arr.ndim == 2
        if single:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"codes must have shape (h, w) or (N, h, w), got {arr.shape}")
        pixels = self.vqgan.decode(torch.as_tensor(arr, dtype=torch.long, device=self.device))
        images = uint8_from_pixels(pixels)
        return images[0] if single else images

    def decode_block(self, ids: Any) -> np.ndarray:
        """uint8 image (H, W, 3) of one token block."""
        return self.decode_codes(parse_image_block(self.layout, ids))

    def resize(self, image: Any) -> np.ndarray:
        """Squash one image to this tokenizer's size (explicit; :meth:`encode` never resizes)."""
        return resize(image, self.image_size)
