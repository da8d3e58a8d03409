"""Episode videos: the front and wrist frames side by side, and the world model's predicted frames when there are.

Each frame of the video is one simulator step: ``front | wrist`` or ``front | wrist | predicted front | predicted
wrist``, where the predictions are the newest ones stamped at or before that step (the world model predicts the
frames after the first row of each chunk; between chunks the last prediction stays). Predicted frames of another
size are scaled to the camera frames' height. H.264 through PyAV.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rynnvla_ros.libero.protocol import CONTROL_FREQ


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    if image.shape[0] == height:
        return image
    import cv2

    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)


def _latest_at(stamps: list[int], frames: list[np.ndarray], t: int) -> np.ndarray | None:
    i = bisect.bisect_right(stamps, t) - 1
    return frames[i] if i >= 0 else None


def compose_frames(
    front: Mapping[int, np.ndarray],
    wrist: Mapping[int, np.ndarray],
    predicted_front: Mapping[int, np.ndarray] | None = None,
    predicted_wrist: Mapping[int, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """One side-by-side uint8 RGB image per front frame stamp (frames keyed by stamp, ns), in stamp order.

    The predicted panels are black until the first prediction; without predictions there are two panels.
    """
    with_prediction = bool(predicted_front) or bool(predicted_wrist)
    pf = sorted((predicted_front or {}).items())
    pw = sorted((predicted_wrist or {}).items())
    pf_stamps, pf_frames = [s for s, _ in pf], [f for _, f in pf]
    pw_stamps, pw_frames = [s for s, _ in pw], [f for _, f in pw]
    out = []
    wrist_stamps = sorted(wrist)
    wrist_frames = [wrist[s] for s in wrist_stamps]
    for t in sorted(front):
        f = front[t]
        h = f.shape[0]
        w = wrist.get(t)
        if w is None:
            w = _latest_at(wrist_stamps, wrist_frames, t)
        panels = [f, _fit_height(w, h) if w is not None else np.zeros_like(f)]
        if with_prediction:
            for stamps, frames in ((pf_stamps, pf_frames), (pw_stamps, pw_frames)):
                p = _latest_at(stamps, frames, t)
                panels.append(_fit_height(p, h) if p is not None else np.zeros_like(f))
        out.append(np.ascontiguousarray(np.concatenate(panels, axis=1)))
    return out


def write_mp4(frames: Sequence[np.ndarray], path: Path, fps: int = CONTROL_FREQ) -> Path:
    """Write uint8 RGB frames (all the same size) as an H.264 mp4; ValueError when there are none."""
    import av

    if not frames:
        raise ValueError(f"no frames to write to {path}")
    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = w + w % 2, h + h % 2  # yuv420p needs even sizes
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            if frame.shape[:2] != (h, w):
                raise ValueError(f"frame of shape {frame.shape} in a video of {h}x{w}")
            padded = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
