"""Camera frame sources without ROS: folders, files (loop / stop), missing devices."""

import cv2
import numpy as np

from rynnvla_ros.camera_source import FrameSource, SourceSpec


def _frames(n: int, h: int = 24, w: int = 32) -> list[np.ndarray]:
    out = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[:, :, 0] = 20 * i
        f[i % h, :, 1] = 255
        out.append(f)
    return out


def test_folder_in_order_then_loops(tmp_path):
    frames = _frames(3)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), f[:, :, ::-1])
    (tmp_path / "notes.txt").write_text("ignored")
    src = FrameSource(SourceSpec(str(tmp_path)))
    got = [src.read() for _ in range(4)]
    for g, f in zip(got, [*frames, frames[0]], strict=True):
        assert np.array_equal(g, f)


def test_file_stops_at_end_when_not_looping(tmp_path):
    path = str(tmp_path / "v.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (32, 24))
    for f in _frames(4):
        writer.write(f)
    writer.release()
    src = FrameSource(SourceSpec(path, loop=False))
    got = [src.read() for _ in range(6)]
    assert [g is not None for g in got] == [True] * 4 + [False] * 2
    assert src.finished and "end of" in src.status


def test_resize_to_requested_size(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), _frames(1)[0])
    src = FrameSource(SourceSpec(str(tmp_path), width=16, height=12))
    assert src.read().shape == (12, 16, 3)


def test_missing_device_and_file_report_and_do_not_raise(tmp_path):
    for spec in (SourceSpec("/dev/video_rynnvla_absent"), SourceSpec(str(tmp_path / "absent.mp4"))):
        src = FrameSource(spec)
        assert src.read() is None
        assert not src.is_open and not src.finished
        assert spec.source in src.status
    empty = FrameSource(SourceSpec(str(tmp_path)))
    assert empty.read() is None and "no images" in empty.status
