"""Frame sources for the camera node (no ROS): a V4L2 device, a video file or a folder of images, via OpenCV.

``FrameSource.read()`` returns the next RGB frame or ``None``; it never raises for a lost or missing device, so the
node can keep publishing what it has and retry. What happened is in ``status`` for the node to log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}


@dataclass
class SourceSpec:
    """What to capture. ``source`` is a device index ("0"), a device path ("/dev/video0"), a video file or a folder."""

    source: str
    width: int = 0  # 0 keeps the native size
    height: int = 0
    loop: bool = True  # at the end of a file or folder: start again (True) or stop (False)

    @property
    def kind(self) -> str:
        """``device``, ``folder`` or ``file``."""
        if self.source.isdigit() or self.source.startswith("/dev/"):
            return "device"
        if os.path.isdir(self.source):
            return "folder"
        return "file"


class FrameSource:
    """Reads RGB frames from a :class:`SourceSpec`; reopens a device that disappears."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.status = "not opened"
        self.finished = False  # end of a non-looping file or folder
        self._cap: cv2.VideoCapture | None = None
        self._files: list[Path] = []
        self._index = 0

    # ------------------------------------------------------------------ opening
    def open(self) -> bool:
        """Try to open the source; returns success and sets ``status``."""
        self.close()
        kind = self.spec.kind
        if kind == "folder":
            self._files = sorted(p for p in Path(self.spec.source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                self.status = f"folder {self.spec.source} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
                return False
            self._index = 0
            self.status = f"reading {len(self._files)} images from {self.spec.source}"
            return True
        if kind == "file" and not os.path.isfile(self.spec.source):
            self.status = f"video file {self.spec.source} does not exist"
            return False
        target: int | str = int(self.spec.source) if self.spec.source.isdigit() else self.spec.source
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2) if kind == "device" else cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            self.status = f"cannot open {kind} {self.spec.source}"
            return False
        if kind == "device" and self.spec.width and self.spec.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.spec.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.spec.height)
        self._cap = cap
        self.status = f"opened {kind} {self.spec.source}"
        return True

    @property
    def is_open(self) -> bool:
        """Whether frames can be read now."""
        return self._cap is not None or bool(self._files)

    def close(self) -> None:
        """Release the device or file."""
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._files = []

    # ------------------------------------------------------------------ reading
    def read(self) -> np.ndarray | None:
        """Next frame as RGB uint8 (H, W, 3) at the requested size, or None (see ``status``)."""
        if self.finished:
            return None
        if not self.is_open and not self.open():
            return None
        bgr = self._read_folder() if self._files else self._read_capture()
        if bgr is None:
            return None
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        h, w = bgr.shape[:2]
        if self.spec.width and self.spec.height and (w, h) != (self.spec.width, self.spec.height):
            bgr = cv2.resize(bgr, (self.spec.width, self.spec.height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _read_folder(self) -> np.ndarray | None:
        if self._index >= len(self._files):
            if not self.spec.loop:
                return self._finish()
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            self.status = f"cannot decode image {path}; skipped"
        return img

    def _read_capture(self) -> np.ndarray | None:
        assert self._cap is not None
        ok, frame = self._cap.read()
        if ok and frame is not None:
            return frame
        if self.spec.kind == "file":
            if not self.spec.loop:
                return self._finish()
            if self.open():  # reopening rewinds exactly, whatever the codec
                ok, frame = self._cap.read()
                if ok:
                    return frame
            self.status = f"video file {self.spec.source} has no readable frames"
            self.close()
            return None
        self.status = f"lost device {self.spec.source}; reopening"
        self.close()
        return None

    def _finish(self) -> None:
        self.finished = True
        self.status = f"end of {self.spec.source}"
        self.close()
        return None
