"""Token samples for training: image codes (cached or encoded live), the sample dataset and the batch order.

The VQGAN is the expensive part of tokenisation, so by default every frame of the used episodes is encoded once and
its (h, w) code grid stored as ``.npy`` per camera in a cache directory keyed by the VQGAN weights, the image size
and the dataset; token sequences are then built on the fly from codes, text, state and action bins.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from rynnvla_model.data.lerobot_source import LeRobotSource
from rynnvla_model.data.samples import (
    KIND_VLA,
    SampleRef,
    SampleSpec,
    chunk_targets,
    history_rows,
    world_model_action,
)
from rynnvla_model.processor import RynnVLAProcessor
from rynnvla_model.sequences import TokenSample, pad_batch

logger = logging.getLogger(__name__)


class FrameCodes(Protocol):
    """(h, w) image codes of a dataset row for a camera key."""

    def codes(self, row: int, camera: str) -> np.ndarray: ...


def _vqgan_digest(processor: RynnVLAProcessor) -> str:
    h = hashlib.sha1()
    for name, tensor in sorted(processor.vqgan.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    h.update(repr(processor.image_size).encode())
    return h.hexdigest()[:16]


class CachedCodes:
    """Codes of every row of some episodes, encoded once and stored in ``cache_dir`` (memory-mapped)."""

    def __init__(
        self,
        source: LeRobotSource,
        processor: RynnVLAProcessor,
        cameras: Sequence[str],
        episodes: Sequence[int],
        cache_dir: str | Path,
        batch_size: int = 32,
        progress: bool = False,
    ) -> None:
        info = (source.root / "meta" / "info.json").read_text()
        key = hashlib.sha1(
            json.dumps([_vqgan_digest(processor), info, sorted(episodes), list(cameras)]).encode()
        ).hexdigest()[:16]
        self.directory = Path(cache_dir) / key
        self._rows = np.full(len(source), -1, dtype=np.int64)
        ranges = [source.episode_range(e) for e in sorted(episodes)]
        order = np.concatenate([np.arange(a, b) for a, b in ranges]) if ranges else np.zeros(0, np.int64)
        self._rows[order] = np.arange(order.size)
        done = self.directory / "done.json"
        if not done.is_file():
            self._encode(source, processor, cameras, sorted(episodes), order.size, batch_size, progress)
            done.write_text(json.dumps({"rows": int(order.size), "cameras": list(cameras)}) + "\n")
        self._codes = {cam: np.load(self.directory / f"{_safe(cam)}.npy", mmap_mode="r") for cam in cameras}

    def _encode(
        self,
        source: LeRobotSource,
        processor: RynnVLAProcessor,
        cameras: Sequence[str],
        episodes: list[int],
        n_rows: int,
        batch_size: int,
        progress: bool,
    ) -> None:
        from tqdm import tqdm

        self.directory.mkdir(parents=True, exist_ok=True)
        h, w = (s // processor.vqgan.config.downsample_factor for s in processor.image_size)
        tmp = {cam: self.directory / f"{_safe(cam)}.tmp.npy" for cam in cameras}
        arrays = {
            cam: np.lib.format.open_memmap(tmp[cam], mode="w+", dtype=np.int32, shape=(n_rows, h, w)) for cam in cameras
        }
        pending: dict[str, list[np.ndarray]] = {cam: [] for cam in cameras}
        written = 0
        attr = {source.keys.front: "front", source.keys.wrist: "wrist"}

        def flush() -> None:
            nonlocal written
            n = len(pending[cameras[0]])
            for cam in cameras:
                if pending[cam]:
                    arrays[cam][written : written + n] = np.stack(processor.encode_images(pending[cam]))
                pending[cam] = []
            written += n

        with torch.inference_mode():
            bar = tqdm(total=n_rows, desc="encoding frames", unit="frame", disable=not progress)
            for episode in episodes:
                for frame in source.episode_frames(episode):
                    for cam in cameras:
                        pending[cam].append(getattr(frame, attr[cam]))
                    if len(pending[cameras[0]]) >= batch_size:
                        flush()
                    bar.update(1)
            flush()
            bar.close()
        for cam in cameras:
            arrays[cam].flush()
            del arrays[cam]
            tmp[cam].replace(self.directory / f"{_safe(cam)}.npy")

    def codes(self, row: int, camera: str) -> np.ndarray:
        """Codes of ``row``; KeyError when the row was not cached."""
        i = int(self._rows[row])
        if i < 0:
            raise KeyError(f"row {row} is not in the code cache {self.directory}")
        return np.asarray(self._codes[camera][i], dtype=np.int64)


class LiveCodes:
    """Codes encoded on demand (frames decoded through LeRobotDataset), with a small LRU of recent rows."""

    def __init__(self, source: LeRobotSource, processor: RynnVLAProcessor, capacity: int = 256) -> None:
        self.source = source
        self.processor = processor
        self.capacity = capacity
        self._lru: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def codes(self, row: int, camera: str) -> np.ndarray:
        if row not in self._lru:
            frame = self.source[row]
            images = {self.source.keys.front: frame.front, self.source.keys.wrist: frame.wrist}
            keys = [k for k, img in images.items() if k is not None and img is not None]
            with torch.inference_mode():
                grids = self.processor.encode_images([images[k] for k in keys])
            self._lru[row] = dict(zip(keys, grids, strict=True))
            if len(self._lru) > self.capacity:
                self._lru.popitem(last=False)
        self._lru.move_to_end(row)
        return self._lru[row][camera]


def _safe(name: str) -> str:
    return name.replace("/", "_").replace(".", "_")


class TokenDataset(torch.utils.data.Dataset):
    """Token samples (:class:`TokenSample`) of sample references, built on the fly."""

    def __init__(
        self,
        refs: Sequence[SampleRef],
        source: LeRobotSource,
        processor: RynnVLAProcessor,
        codes: FrameCodes,
        spec: SampleSpec,
    ) -> None:
        self.refs = list(refs)
        self.builder = processor.builder
        self.codes = codes
        self.spec = spec
        self.states = source.states()
        self.actions = source.actions()
        episode = source.column("episode_index").astype(np.int64)
        self._starts = np.zeros(len(source), dtype=np.int64)
        self._stops = np.zeros(len(source), dtype=np.int64)
        self._tasks: dict[int, str] = {}
        for e in np.unique(episode):
            start, stop = source.episode_range(int(e))
            self._starts[start:stop], self._stops[start:stop] = start, stop
            self._tasks[int(e)] = source.task_of(int(e))
        self._episode = episode
        self.cameras = [source.keys.front] + ([source.keys.wrist] if spec.use_wrist and source.keys.wrist else [])

    def __len__(self) -> int:
        return len(self.refs)

    def kind(self, index: int) -> str:
        """``vla`` or ``world_model``."""
        return self.refs[index].kind

    def _grids(self, rows: Sequence[int]) -> list[np.ndarray]:
        return [self.codes.codes(r, cam) for r in rows for cam in self.cameras]

    def chunk(self, index: int) -> np.ndarray:
        """(K, A) action targets of a VLA sample (model units)."""
        row = self.refs[index].row
        return chunk_targets(self.actions, self.states, row, int(self._stops[row]), self.spec)

    def __getitem__(self, index: int) -> TokenSample:
        ref = self.refs[index]
        row = ref.row
        if ref.kind == KIND_VLA:
            state = self.states[row] if self.spec.use_state else None
            grids = self._grids(history_rows(row, int(self._starts[row]), self.spec))
            task = self._tasks[int(self._episode[row])]
            return self.builder.vla_sample(task, state, grids, self.chunk(index))
        action = world_model_action(self.actions, self.states, row, int(self._stops[row]), self.spec)
        return self.builder.world_model_sample(
            self._grids([row]), action, self._grids([row + self.spec.world_model_horizon])
        )


@dataclass
class Collator:
    """Pads a list of samples into int64 tensors (``input_ids``, ``labels``, ``attention_mask``)."""

    pad_id: int
    max_len: int

    def __call__(self, samples: list[TokenSample]) -> dict[str, torch.Tensor]:
        batch = pad_batch(samples, self.pad_id, self.max_len)
        out = {k: torch.from_numpy(batch[k]) for k in ("input_ids", "labels", "attention_mask")}
        out["is_vla"] = torch.tensor([s.kind == KIND_VLA for s in samples])
        return out


@dataclass(frozen=True)
class BatchPlan:
    """The deterministic order of micro-batches: the same global batches whatever the number of processes.

    Epoch ``e`` visits the samples in ``permutation(seed + e)``; each optimizer step takes the next global batch of
    ``micro_batch_size * grad_accum * world_size`` samples (an incomplete last batch is dropped), and micro-batch
    ``i`` of rank ``r`` is slice ``i * world_size + r`` of it. So one process with ``grad_accum = 2`` sees exactly the
    micro-batches that two processes with ``grad_accum = 1`` see between them.
    """

    num_samples: int
    micro_batch_size: int
    grad_accum: int
    world_size: int
    seed: int

    @property
    def global_batch(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return self.num_samples // self.global_batch

    def __post_init__(self) -> None:
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{self.num_samples} training samples cannot fill one global batch of {self.global_batch} "
                "(micro_batch_size x grad_accum x world size)"
            )

    def micro_batches(self, rank: int, start_step: int, stop_step: int) -> Iterator[list[int]]:
        """Sample indices of rank ``rank``'s micro-batches for optimizer steps [start_step, stop_step)."""
        perm: np.ndarray | None = None
        perm_epoch = -1
        for step in range(start_step, stop_step):
            epoch, pos = divmod(step, self.steps_per_epoch)
            if epoch != perm_epoch:
                perm = np.random.default_rng(self.seed + epoch).permutation(self.num_samples)
                perm_epoch = epoch
            batch = perm[pos * self.global_batch : (pos + 1) * self.global_batch]
            for i in range(self.grad_accum):
                j = i * self.world_size + rank
                yield batch[j * self.micro_batch_size : (j + 1) * self.micro_batch_size].tolist()
