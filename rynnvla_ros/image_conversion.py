"""Exact conversions between numpy arrays and ``sensor_msgs/Image`` / ``CompressedImage``.

cv_bridge is not available from PyPI for ROS 2 (the package of that name is ROS 1 code), so this module does the
few lines of numpy it takes. Supported raw encodings: ``rgb8``, ``bgr8``, ``mono8`` and ``16UC1`` (depth in mm),
with row padding (``step``) and big-endian 16-bit data handled on the way in.
"""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

# encoding -> (dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "mono8": (np.dtype(np.uint8), 1),
    "16UC1": (np.dtype(np.uint16), 1),
}


class ImageConversionError(ValueError):
    """An image message or array that cannot be converted; the message says why."""


def _layout(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        ) from None


def image_to_array(msg: Image) -> np.ndarray:
    """Return the pixels of ``msg`` as an (H, W, 3) or (H, W) array in the message's own encoding."""
    dtype, channels = _layout(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * channels * dtype.itemsize
    if h == 0 or w == 0:
        raise ImageConversionError(f"empty image ({w}x{h})")
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than a row of {w} {msg.encoding} pixels ({row_bytes} B)")
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if data.size != step * h:
        raise ImageConversionError(f"data has {data.size} bytes, expected step*height = {step * h}")
    rows = data.reshape(h, step)[:, :row_bytes]
    out_dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<") if dtype.itemsize > 1 else dtype
    arr = np.ascontiguousarray(rows).view(out_dtype).astype(dtype, copy=False)
    return arr.reshape(h, w, channels) if channels > 1 else arr.reshape(h, w)


def array_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """Build an ``Image`` from an (H, W, 3) or (H, W) array already in ``encoding`` (no colour conversion)."""
    dtype, channels = _layout(encoding)
    arr = np.asarray(array)
    expected_ndim = 3 if channels > 1 else 2
    if arr.ndim == 3 and channels == 1 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != expected_ndim or (channels > 1 and arr.shape[2] != channels):
        raise ImageConversionError(f"{encoding} needs shape (H, W{', 3' if channels > 1 else ''}), got {arr.shape}")
    if arr.dtype != dtype:
        raise ImageConversionError(f"{encoding} needs dtype {dtype}, got {arr.dtype}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<")).tobytes()
    return msg


def to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an 8-bit array in ``encoding`` to RGB (H, W, 3) uint8."""
    if encoding == "rgb8":
        return array
    if encoding == "bgr8":
        return np.ascontiguousarray(array[:, :, ::-1])
    if encoding == "mono8":
        return np.repeat(array[:, :, None], 3, axis=2)
    raise ImageConversionError(f"cannot convert {encoding} to rgb8")


def from_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an RGB (H, W, 3) uint8 array to ``encoding`` (rgb8, bgr8 or mono8)."""
    if encoding == "rgb8":
        return rgb
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if encoding == "mono8":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    raise ImageConversionError(f"cannot convert rgb8 to {encoding}")


def image_to_rgb(msg: Image) -> np.ndarray:
    """Pixels of an 8-bit colour or mono ``Image`` as RGB (H, W, 3) uint8."""
    return to_rgb(image_to_array(msg), msg.encoding)


def compressed_to_array(msg: CompressedImage) -> tuple[np.ndarray, str]:
    """Decode a ``CompressedImage`` (png or jpeg); returns the array and its encoding (bgr8, mono8 or 16UC1)."""
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if arr is None:
        raise ImageConversionError(f"cannot decode compressed image (format {msg.format!r}, {buf.size} bytes)")
    if arr.dtype == np.uint16:
        return arr, "16UC1"
    if arr.ndim == 2:
        return arr, "mono8"
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return arr, "bgr8"


def array_to_compressed(
    array: np.ndarray, encoding: str, fmt: str = "png", header: Header | None = None, jpeg_quality: int = 90
) -> CompressedImage:
    """Encode an array in ``encoding`` as png (lossless, all encodings) or jpeg (8-bit only)."""
    _layout(encoding)
    arr = np.asarray(array)
    if encoding == "rgb8":
        arr = arr[:, :, ::-1]  # OpenCV writes BGR
    if fmt not in ("png", "jpeg"):
        raise ImageConversionError(f"compressed format must be png or jpeg, got {fmt!r}")
    if fmt == "jpeg" and encoding == "16UC1":
        raise ImageConversionError("jpeg cannot hold 16UC1 images; use png")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".png" if fmt == "png" else ".jpg", np.ascontiguousarray(arr), params)
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode a {arr.shape} {arr.dtype} image as {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    out_encoding = "bgr8" if encoding == "rgb8" else encoding
    msg.format = f"{out_encoding}; {fmt} compressed {out_encoding}"
    msg.data = buf.tobytes()
    return msg
