"""Image token blocks: official counts, round trips, validation, and the pixel path through a tiny VQGAN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rynnvla_model.image_tokenizer import (
    ImageTokenizer,
    find_image_blocks,
    image_block,
    image_block_length,
    parse_image_block,
    pixels_from_uint8,
    resize,
    uint8_from_pixels,
)
from rynnvla_model.vocab import VocabLayout
from rynnvla_model.vqgan import VQGAN, VQGANConfig


@pytest.fixture(scope="module")
def official() -> VocabLayout:
    return VocabLayout.official(4 + np.random.default_rng(0).permutation(8192))


def test_official_block_counts_and_layout(official: VocabLayout) -> None:
    rng = np.random.default_rng(1)
    block = image_block(official, rng.integers(0, 8192, (16, 16)))
    assert len(block) == image_block_length(16, 16) == 276
    assert block[:3].tolist() == [8197, 8812, 8812] and block[-1] == 8196
    assert np.all(block[3:-1].reshape(16, 17)[:, 16] == 8803)
    big = image_block(official, rng.integers(0, 8192, (32, 32)))
    assert len(big) == 1060 and big[1] == big[2] == 8820
    wide = image_block(official, np.zeros((2, 4), dtype=np.int64))
    assert wide[1:3].tolist() == [8805, 8806] and wide[3] == official.image_code_ids[0]


def test_round_trip_codes_ids_codes(official: VocabLayout) -> None:
    rng = np.random.default_rng(2)
    for layout, n in ((official, 8192), (VocabLayout.compact(64), 64)):
        codes = rng.integers(0, n, (6, 4))
        back = parse_image_block(layout, image_block(layout, codes))
        assert back.dtype == np.int64 and np.array_equal(back, codes)


def test_bad_blocks_are_rejected(official: VocabLayout) -> None:
    good = image_block(official, np.arange(16).reshape(4, 4))
    cases = {
        "must start with 8197": np.concatenate([[8196], good[1:]]),
        "not in 8805": np.concatenate([good[:1], [8804], good[2:]]),
        "has 24 tokens, got 23": np.delete(good, 5),
        "does not end with row_end": np.where(np.arange(len(good)) == 7, 100, good),
        "not image codes": np.where(np.arange(len(good)) == 4, 8710, good),
        "1-D integer": good.astype(np.float64),
        "at least 5 tokens": good[:3],
    }
    for message, block in cases.items():
        with pytest.raises(ValueError, match=message):
            parse_image_block(official, block)
    with pytest.raises(ValueError, match="codes must lie in"):
        image_block(official, np.full((2, 2), -1))
    with pytest.raises(ValueError, match=r"\(h, w\) grid"):
        image_block(official, np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="must be even"):
        image_block(official, np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="not closed"):
        find_image_blocks(official, good[:-1])
    assert find_image_blocks(official, np.concatenate([[0], good, [1], good])) == [(1, 25), (26, 50)]


def test_pixel_scaling_has_no_mean_std() -> None:
    img = np.array([[[0, 255, 128]]], dtype=np.uint8)
    px = pixels_from_uint8(img[None])
    assert px.shape == (1, 3, 1, 1)
    assert torch.allclose(px.flatten(), torch.tensor([-1.0, 1.0, 128 / 255 * 2 - 1]), atol=1e-6)
    assert uint8_from_pixels(px).tolist() == img[None].tolist()


@pytest.fixture(scope="module")
def tokenizer() -> ImageTokenizer:
    torch.manual_seed(0)
    vqgan = VQGAN(VQGANConfig.tiny(n_embed=64, downsample_factor=16)).eval()
    return ImageTokenizer(vqgan, VocabLayout.compact(64), 256)


def test_tokenize_and_decode_through_vqgan(tokenizer: ImageTokenizer) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    codes = tokenizer.encode(images)
    assert codes.shape == (2, 16, 16) and codes.dtype == np.int64
    block = tokenizer.tokenize(images[0])
    assert len(block) == tokenizer.block_length == 276
    assert np.array_equal(parse_image_block(tokenizer.layout, block), codes[0])
    image = tokenizer.decode_block(block)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert ImageTokenizer(tokenizer.vqgan, tokenizer.layout, 512).block_length == 1060


def test_shrinking_averages_pixel_areas() -> None:
    """Converters and nodes share this resize; a 4x shrink is the mean of each 4x4 block (bicubic would ring)."""
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    blocks = image.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.abs(resize(image, 64).astype(float) - blocks).max() <= 1.0


def test_wrong_size_is_rejected_and_resize_is_explicit(tokenizer: ImageTokenizer) -> None:
    small = np.zeros((240, 320, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"expected images of 256x256 pixels, got 240x320"):
        tokenizer.encode([small])
    squashed = tokenizer.resize(small)
    assert squashed.shape == (256, 256, 3) and squashed.dtype == np.uint8
    assert resize(np.full((8, 4, 3), 200, dtype=np.uint8), (4, 6)).tolist() == np.full((4, 6, 3), 200).tolist()
    with pytest.raises(ValueError, match="uint8"):
        tokenizer.encode([np.zeros((256, 256, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match="HxWx3"):
        tokenizer.encode([np.zeros((256, 256), dtype=np.uint8)])
    with pytest.raises(ValueError, match="multiple of the VQGAN downsampling factor 16"):
        ImageTokenizer(tokenizer.vqgan, tokenizer.layout, 200)
    with pytest.raises(ValueError, match="layout maps only 16"):
        ImageTokenizer(tokenizer.vqgan, VocabLayout.compact(16), 256)
