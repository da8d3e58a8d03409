"""Read existing LeRobot v3 datasets (local roots, e.g. recorded with ``lerobot-record`` or converted here).

:class:`LeRobotSource` exposes frames as numpy (front/wrist RGB images, state, action, task, episode index) for the
sample builders, with the feature keys configurable. Numeric columns are read straight from the parquet files
(no video decoding); images come from the mp4 files (decoded per block with pyav) or the parquet image columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rynnvla_model.data.lerobot_io import VIDEO_BACKEND, default_repo_id


@dataclass(frozen=True)
class SourceKeys:
    """Feature keys of the dataset; ``wrist=None`` for single-camera datasets, both None to read numbers only."""

    front: str | None = "observation.images.front"
    wrist: str | None = "observation.images.wrist"
    state: str = "observation.state"
    action: str = "action"


@dataclass(frozen=True)
class Frame:
    """One dataset row with its images as (H, W, 3) uint8 arrays."""

    index: int
    episode_index: int
    frame_index: int
    timestamp: float
    task: str
    front: np.ndarray | None
    wrist: np.ndarray | None
    state: np.ndarray
    action: np.ndarray


def _vector_column(column: Any) -> np.ndarray:
    """A parquet list column (fixed length D) as an (N, D) float array."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(column)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(n, -1)
    return column.to_numpy(zero_copy_only=False).reshape(n, 1)


class LeRobotSource:
    """A local LeRobot v3 dataset, read-only."""

    def __init__(self, root: str | Path, keys: SourceKeys | None = None, repo_id: str | None = None) -> None:
        from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

        self.root = Path(root)
        if not (self.root / "meta" / "info.json").is_file():
            raise FileNotFoundError(f"{self.root} is not a LeRobot dataset (no meta/info.json)")
        self.keys = keys or SourceKeys()
        self.repo_id = repo_id or default_repo_id(self.root)
        self.meta = LeRobotDatasetMetadata(self.repo_id, root=self.root)
        wanted = [k for k in (self.keys.front, self.keys.wrist, self.keys.state, self.keys.action) if k is not None]
        missing = [k for k in wanted if k not in self.meta.features]
        if missing:
            raise KeyError(f"{self.root}: features {missing} not found; available: {sorted(self.meta.features)}")
        self._columns: dict[str, np.ndarray] = {}
        self._dataset = None
        self._tasks = {int(row.task_index): str(task) for task, row in self.meta.tasks.iterrows()}

    # ------------------------------------------------------------------------------------------- metadata
    @property
    def fps(self) -> int:
        """Frames per second."""
        return int(self.meta.fps)

    @property
    def features(self) -> dict[str, dict]:
        """Feature specs from info.json."""
        return self.meta.features

    @property
    def num_episodes(self) -> int:
        """Number of episodes."""
        return int(self.meta.total_episodes)

    def __len__(self) -> int:
        return int(self.meta.total_frames)

    def episode_range(self, episode: int) -> tuple[int, int]:
        """Global row range [start, stop) of ``episode``."""
        if not 0 <= episode < self.num_episodes:
            raise IndexError(f"episode {episode} out of range (dataset has {self.num_episodes})")
        ep = self.meta.episodes[episode]
        return int(ep["dataset_from_index"]), int(ep["dataset_to_index"])

    def task_of(self, episode: int) -> str:
        """Task text of ``episode`` (its first frame's task)."""
        start, _ = self.episode_range(episode)
        return self._tasks[int(self.column("task_index")[start])]

    # -------------------------------------------------------------------------------------------- columns
    def column(self, key: str) -> np.ndarray:
        """A numeric feature of all rows, in row order: (N,) for scalars, (N, D) for vectors."""
        if key not in self._columns:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if key not in self.meta.features or self.meta.features[key]["dtype"] in ("image", "video"):
                raise KeyError(f"{key!r} is not a numeric feature of {self.root}")
            files = sorted((self.root / "data").rglob("*.parquet"))
            tables = [pq.read_table(p, columns=["index", key]) for p in files]
            table = pa.concat_tables(tables).sort_by("index") if tables else None
            if table is None or table.num_rows == 0:
                values = np.zeros((0,), dtype=np.float32)
            else:
                values = _vector_column(table.column(key))
                if tuple(self.meta.features[key]["shape"]) == (1,):
                    values = values.reshape(-1)
            self._columns[key] = values
        return self._columns[key]

    def states(self) -> np.ndarray:
        """(N, S) state of every row."""
        return self.column(self.keys.state).astype(np.float32)

    def actions(self) -> np.ndarray:
        """(N, A) action of every row."""
        return self.column(self.keys.action).astype(np.float32)

    # --------------------------------------------------------------------------------------------- frames
    def _lerobot_dataset(self):
        if self._dataset is None:
            from lerobot.datasets.lerobot_dataset import LeRobotDataset

            self._dataset = LeRobotDataset(self.repo_id, root=self.root, video_backend=VIDEO_BACKEND, return_uint8=True)
        return self._dataset

    def _frame(self, index: int, front: np.ndarray | None, wrist: np.ndarray | None) -> Frame:
        return Frame(
            index=index,
            episode_index=int(self.column("episode_index")[index]),
            frame_index=int(self.column("frame_index")[index]),
            timestamp=float(self.column("timestamp")[index]),
            task=self._tasks[int(self.column("task_index")[index])],
            front=front,
            wrist=wrist,
            state=self.states()[index],
            action=self.actions()[index],
        )

    def __getitem__(self, index: int) -> Frame:
        """Frame ``index`` (global row), decoded through ``LeRobotDataset``."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range (dataset has {len(self)})")
        item = self._lerobot_dataset()[index]

        def hwc(key: str | None) -> np.ndarray | None:
            if key is None:
                return None
            chw = np.asarray(item[key])
            if chw.dtype != np.uint8:  # image features come as float in [0, 1]
                chw = np.rint(chw * 255.0).clip(0, 255).astype(np.uint8)
            return np.ascontiguousarray(chw.transpose(1, 2, 0))

        return self._frame(index, hwc(self.keys.front), hwc(self.keys.wrist))

    def _decode_block(self, episode: int, key: str, rows: range) -> np.ndarray:
        """(len(rows), H, W, 3) uint8 frames of a video feature for global ``rows`` of ``episode``."""
        from lerobot.datasets.video_utils import decode_video_frames

        ep = self.meta.episodes[episode]
        offset = float(ep[f"videos/{key}/from_timestamp"])
        times = [offset + float(self.column("timestamp")[r]) for r in rows]
        path = self.root / self.meta.get_video_file_path(episode, key)
        frames = decode_video_frames(path, times, 0.5 / self.fps, VIDEO_BACKEND, return_uint8=True)
        return frames.numpy().transpose(0, 2, 3, 1)

    def episode_frames(self, episode: int, block: int = 64) -> Iterator[Frame]:
        """The frames of ``episode`` in order; videos are decoded ``block`` frames at a time."""
        start, stop = self.episode_range(episode)
        cams = [k for k in (self.keys.front, self.keys.wrist) if k is not None]
        videos = [k for k in cams if self.meta.features[k]["dtype"] == "video"]
        for lo in range(start, stop, block):
            rows = range(lo, min(lo + block, stop))
            decoded = {k: self._decode_block(episode, k, rows) for k in videos}
            for i, r in enumerate(rows):
                if len(videos) < len(cams):  # image features: decoded by LeRobotDataset
                    frame = self[r]
                    images = {self.keys.front: frame.front, self.keys.wrist: frame.wrist}
                else:
                    images = {}
                images.update({k: decoded[k][i] for k in videos})
                yield self._frame(r, images.get(self.keys.front), images.get(self.keys.wrist))
