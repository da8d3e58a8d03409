"""Writing LeRobot v3 datasets offline through lerobot's own classes, and checking what was written.

Everything here works on local roots only (nothing is fetched from the Hub) and decodes/encodes video with pyav.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

VIDEO_BACKEND = "pyav"
"""Decoder for reading videos back; torchcodec needs system FFmpeg libraries that are often absent."""


MIN_AV1_SIDE = 32
"""Smallest image side for lerobot's default AV1 encoder (SVT-AV1 dies with SIGFPE on some smaller sizes)."""


class DatasetExistsError(FileExistsError):
    """The output directory exists and overwriting was not asked for."""


ENCODER_QUEUE_FRAMES = 100_000
"""Frames lerobot's streaming video encoder may buffer per camera. Its default (30) drops frames when the encoder
lags (seen on 2 busy cores: one mp4 frame short of its parquet rows); a conversion buffers instead (an episode of
450 frames at 256x256 is about 90 MB)."""


def default_repo_id(root: Path) -> str:
    """A local-only repo id (``local/<directory name>``) for datasets that are never pushed."""
    return f"local/{Path(root).name}"


def image_feature(height: int, width: int, use_video: bool = True) -> dict[str, Any]:
    """Feature spec of an RGB camera."""
    return {
        "dtype": "video" if use_video else "image",
        "shape": (int(height), int(width), 3),
        "names": ["height", "width", "channels"],
    }


def vector_feature(names: list[str], info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Feature spec of a float32 vector with one name per dimension (and optional ``info``, e.g. units)."""
    feature: dict[str, Any] = {"dtype": "float32", "shape": (len(names),), "names": list(names)}
    if info:
        feature["info"] = dict(info)
    return feature


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """``"256"`` -> (256, 256); ``"224x320"`` -> (224, 320) as (height, width); None stays None."""
    if text is None or text == "":
        return None
    parts = text.lower().split("x")
    try:
        size = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else None
    except ValueError:
        size = None
    if size is None or min(size) <= 0:
        raise ValueError(f"image size must be N or HxW with positive integers, got {text!r}")
    return size


def create_dataset(
    root: Path,
    fps: int,
    features: dict[str, dict],
    robot_type: str | None,
    repo_id: str | None = None,
    vcodec: str | None = None,
    overwrite: bool = False,
):
    """A new write-mode ``LeRobotDataset`` at ``root`` (videos via pyav when a feature is ``video``)."""
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    small = [k for k, f in features.items() if f["dtype"] == "video" and min(f["shape"][:2]) < MIN_AV1_SIDE]
    if small and (vcodec or "libsvtav1") == "libsvtav1":
        raise ValueError(
            f"videos {small} are smaller than {MIN_AV1_SIDE} px, which crashes the libsvtav1 encoder; "
            "use a larger image size or another codec (e.g. h264)"
        )
    root = Path(root)
    if root.exists():
        if not overwrite:
            raise DatasetExistsError(f"{root} exists; choose a new output directory or pass --overwrite")
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only, not its banner per video
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()  # one bar per episode otherwise
    except ImportError:  # pragma: no cover - datasets comes with lerobot
        pass
    use_videos = any(f["dtype"] == "video" for f in features.values())
    return LeRobotDataset.create(
        repo_id or default_repo_id(root),
        fps=int(fps),
        features=features,
        root=root,
        robot_type=robot_type,
        use_videos=use_videos,
        video_backend=VIDEO_BACKEND,
        rgb_encoder=RGBEncoderConfig(vcodec=vcodec) if vcodec else None,
        streaming_encoding=use_videos,
        encoder_queue_maxsize=ENCODER_QUEUE_FRAMES,
    )


def restore_normal_scheduling() -> list[str]:
    """Put every real-time (FIFO or round-robin) thread of this process back on normal scheduling; returns their
    names.

    The SVT-AV1 encoder (lerobot's default ``libsvtav1``) run as root switches the threads it touches, the caller's
    included, to SCHED_FIFO at the highest priority, and threads started later inherit it: one busy thread then
    starves everything else on its core (a small machine stops responding). Called after every encoded episode.
    Two layers: the kernel's policy of every thread, and glibc's cached policy of the Python threads (from which
    glibc starts new threads explicitly FIFO again even after the kernel's policy was reset).
    """
    if not hasattr(os, "sched_setscheduler"):
        return []
    realtime = (os.SCHED_FIFO, os.SCHED_RR)
    changed = []
    for tid in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(tid)) in realtime:
                os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))
                changed.append(Path(f"/proc/self/task/{tid}/comm").read_text().strip() + f" ({tid})")
        except OSError:  # the thread has just exited
            continue
    _reset_glibc_policies()
    return changed


def _reset_glibc_policies() -> None:
    """pthread_setschedparam(SCHED_OTHER) on every live Python thread (clears glibc's cached policy)."""
    import ctypes
    import ctypes.util
    import threading

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - not glibc
        return
    param = ctypes.c_int(0)  # struct sched_param { int sched_priority; }
    for thread in threading.enumerate():
        if thread.ident is not None:
            libc.pthread_setschedparam(ctypes.c_ulong(thread.ident), os.SCHED_OTHER, ctypes.byref(param))


def save_episode(dataset) -> None:
    """``dataset.save_episode`` (encoding in this thread), then normal scheduling again."""
    try:
        dataset.save_episode(parallel_encoding=False)
    finally:
        restore_normal_scheduling()


def finish_dataset(dataset, root: Path) -> None:
    """Finalize a write-mode dataset and remove the empty image staging folders lerobot leaves behind."""
    try:
        dataset.finalize()
    finally:
        restore_normal_scheduling()
    images = Path(root) / "images"
    if images.is_dir():
        for folder in sorted(images.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if not any(images.iterdir()):
            images.rmdir()


def _packet_times(path: Path) -> np.ndarray:
    """Presentation times (s) of the video packets of an mp4 file, sorted."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = Fraction(stream.time_base)
        times = [float(p.pts * base) for p in container.demux(stream) if p.pts is not None and p.size > 0]
    return np.sort(np.asarray(times, dtype=np.float64))


def check_video_frames(root: Path, repo_id: str | None = None) -> list[str]:
    """Compare every episode's frame count in each mp4 with its parquet rows; returns the mismatches found."""
    import pyarrow.parquet as pq
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    root = Path(root)
    meta = LeRobotDatasetMetadata(repo_id or default_repo_id(root), root=root)
    problems: list[str] = []
    if not meta.video_keys:
        return problems
    rows: dict[int, int] = defaultdict(int)
    for path in sorted((root / "data").rglob("*.parquet")):
        column = pq.read_table(path, columns=["episode_index"]).column("episode_index").to_numpy()
        for ep, n in zip(*np.unique(column, return_counts=True), strict=True):
            rows[int(ep)] += int(n)
    half = 0.5 / meta.fps
    cache: dict[Path, np.ndarray] = {}
    for ep_index in range(meta.total_episodes):
        episode = meta.episodes[ep_index]
        length = int(episode["length"])
        if rows.get(ep_index, 0) != length:
            problems.append(f"episode {ep_index}: {rows.get(ep_index, 0)} parquet rows, metadata says {length}")
        for key in meta.video_keys:
            path = root / meta.get_video_file_path(ep_index, key)
            if not path.is_file():
                problems.append(f"episode {ep_index} {key}: video file {path} is missing")
                continue
            if path not in cache:
                cache[path] = _packet_times(path)
            times = cache[path]
            lo = float(episode[f"videos/{key}/from_timestamp"]) - half
            hi = float(episode[f"videos/{key}/to_timestamp"]) - half
            frames = int(np.count_nonzero((times >= lo) & (times < hi)))
            if frames != rows.get(ep_index, 0):
                problems.append(f"episode {ep_index} {key}: {frames} video frames in {path.name}, {length} rows")
    return problems


def close_conversion(
    dataset, output: Path, repo_id: str, use_videos: bool, compute_stats: bool, report, started: float
) -> None:
    """The shared end of every converter: finalize the dataset, check its videos, write its statistics and the
    report (``started`` is the ``time.perf_counter()`` of the conversion's start)."""
    import time

    from rynnvla_model.data.report import REPORT_FILE
    from rynnvla_model.data.stats import write_dataset_stats

    if dataset is not None:
        finish_dataset(dataset, output)
        if use_videos:
            report.video_check = check_video_frames(output, repo_id)
        if compute_stats and report.written_frames:
            report.stats_file = str(write_dataset_stats(output))
    report.seconds = time.perf_counter() - started
    if output.is_dir():
        report.save(output / REPORT_FILE)
