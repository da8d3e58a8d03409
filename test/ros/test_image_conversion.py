"""numpy <-> sensor_msgs Image / CompressedImage conversions are exact."""

import numpy as np
import pytest
from sensor_msgs.msg import Image

from rynnvla_ros.image_conversion import (
    ImageConversionError,
    array_to_compressed,
    array_to_image,
    compressed_to_array,
    from_rgb,
    image_to_array,
    image_to_rgb,
    to_rgb,
)

RNG = np.random.default_rng(0)
ARRAYS = {
    "rgb8": RNG.integers(0, 256, (7, 5, 3), dtype=np.uint8),
    "bgr8": RNG.integers(0, 256, (7, 5, 3), dtype=np.uint8),
    "mono8": RNG.integers(0, 256, (7, 5), dtype=np.uint8),
    "16UC1": RNG.integers(0, 65536, (7, 5), dtype=np.uint16),
}


@pytest.mark.parametrize("encoding", ARRAYS)
def test_raw_round_trip_is_exact(encoding):
    arr = ARRAYS[encoding]
    msg = array_to_image(arr, encoding)
    assert (msg.height, msg.width, msg.encoding) == (7, 5, encoding)
    back = image_to_array(msg)
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


@pytest.mark.parametrize("encoding", ARRAYS)
def test_png_round_trip_is_exact(encoding):
    arr = ARRAYS[encoding]
    back, enc = compressed_to_array(array_to_compressed(arr, encoding, "png"))
    if encoding == "rgb8":
        assert enc == "bgr8" and np.array_equal(back[:, :, ::-1], arr)
    else:
        assert enc == encoding and np.array_equal(back, arr)


def test_padded_rows_and_big_endian_are_read():
    depth = ARRAYS["16UC1"]
    msg = Image(height=7, width=5, encoding="16UC1", is_bigendian=1, step=12)  # 10 bytes of pixels + 2 padding
    rows = np.zeros((7, 12), np.uint8)
    rows[:, :10] = depth.astype(">u2").view(np.uint8).reshape(7, 10)
    msg.data = rows.tobytes()
    assert np.array_equal(image_to_array(msg), depth)


def test_colour_helpers():
    rgb = ARRAYS["rgb8"]
    assert np.array_equal(to_rgb(from_rgb(rgb, "bgr8"), "bgr8"), rgb)
    msg = array_to_image(from_rgb(rgb, "bgr8"), "bgr8")
    assert np.array_equal(image_to_rgb(msg), rgb)
    assert from_rgb(rgb, "mono8").shape == (7, 5)


def test_jpeg_is_close():
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 1, 3))
    back, _ = compressed_to_array(array_to_compressed(smooth, "bgr8", "jpeg", jpeg_quality=95))
    assert np.abs(back.astype(int) - smooth).mean() < 3


@pytest.mark.parametrize(
    "build",
    [
        lambda: Image(height=2, width=2, encoding="rgb16", step=12, data=bytes(24)),  # unsupported encoding
        lambda: Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(10)),  # truncated data
        lambda: Image(height=2, width=2, encoding="rgb8", step=4, data=bytes(8)),  # step shorter than a row
        lambda: Image(height=0, width=0, encoding="rgb8", step=0),
    ],
)
def test_malformed_messages_raise_clear_errors(build):
    with pytest.raises(ImageConversionError):
        image_to_array(build())


def test_wrong_arrays_raise_clear_errors():
    with pytest.raises(ImageConversionError, match="dtype"):
        array_to_image(ARRAYS["rgb8"].astype(np.float32), "rgb8")
    with pytest.raises(ImageConversionError, match="shape"):
        array_to_image(ARRAYS["mono8"], "rgb8")
    with pytest.raises(ImageConversionError, match="jpeg"):
        array_to_compressed(ARRAYS["16UC1"], "16UC1", "jpeg")
