"""rosbag2 bags (mcap or sqlite3) -> one LeRobot v3 dataset, written with lerobot's own ``LeRobotDataset``.

Frames
    One candidate frame per message of the reference camera, at its time (receive time, or ``header.stamp`` with
    ``time_source="header"``); with a given ``fps`` below the camera's rate, the message nearest each tick of a
    1/fps grid (a 30 Hz camera gives a 10 fps dataset; without one, every frame). Every other stream is sampled
    causally: its latest message at or before the frame time, never a later one. A frame is dropped, with its
    reasons counted in the report, when a stream has no such message (``no_state``, ``no_action``,
    ``no_image:<cam>``), when that message is older than the stream's max age (``stale_*``), when the reference time
    repeats (``duplicate_reference_time``), when an image cannot be decoded (``corrupt_image:<cam>``) or when the
    frame lies outside every episode (``outside_episode``, ``discarded_episode``). Dataset timestamps are
    ``frame_index / fps`` (LeRobot's convention); gaps in the reference stream and dropped frames are listed per
    episode in the report.
Features
    ``observation.images.<camera>`` (RGB; mp4 via pyav, or PNG images), ``observation.state`` (the state joints)
    and ``action`` (the action source's values for the same joints, or the Cartesian ActionChunk dimensions), in the
    unit chosen by :class:`~rynnvla_ros.dataset.units.JointUnits`, recorded in each feature's ``info``.
Episodes
    One per bag, or split by an episode topic (:mod:`rynnvla_ros.dataset.episodes`). A bag or an episode that
    fails is reported with its file and reason; the others are still converted.
After writing
    mp4 frame counts are checked against the parquet rows, and ``norm_stats.json`` is written beside the data.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rynnvla_model.data.lerobot_io import (
    DatasetExistsError,
    close_conversion,
    create_dataset,
    image_feature,
    save_episode,
    vector_feature,
)
from rynnvla_model.data.report import ConversionReport, EpisodeReport
from rynnvla_model.image_tokenizer import resize
from rynnvla_ros.dataset import extract
from rynnvla_ros.dataset.bag_index import BagConfig, BagError, BagIndex, index_bag, open_reader
from rynnvla_ros.dataset.episodes import Segment, segments
from rynnvla_ros.dataset.sampling import NS, estimate_fps, reference_gaps, sample_asof, subsample
from rynnvla_ros.dataset.types import typestore_for


def find_bags(inputs: list[Path]) -> list[Path]:
    """Bags named by ``inputs``: bag directories, ``.mcap``/``.db3`` files, or folders searched for bag directories."""
    bags: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir() and not (item / "metadata.yaml").is_file():
            found = sorted(p.parent for p in item.rglob("metadata.yaml"))
            bags.extend(found or [item])  # an empty folder is reported as an unreadable bag
        else:
            bags.append(item)
    return bags


class _Plan:
    """The frames of one bag to write: per kept frame its episode, values and the image messages it needs."""

    def __init__(self, index: BagIndex, config: BagConfig, fps: float) -> None:
        self.index, self.config = index, config
        ref = index.images[config.reference].stream()
        times, ref_idx = ref.times, ref.indices
        if config.fps is not None:  # an explicit rate below the camera's thins its frames
            kept = subsample(times, fps)
            times, ref_idx = times[kept], ref_idx[kept]
        self.times = times
        reasons: dict[str, np.ndarray] = {}
        dup = np.zeros(times.shape, bool)
        dup[1:] = times[1:] == times[:-1]
        reasons["duplicate_reference_time"] = dup
        units = config.units
        state = sample_asof(index.state.stream(), times, config.state_max_age)
        reasons["no_state"], reasons["stale_state"] = state.missing, state.stale
        action = sample_asof(index.action.stream(), times, config.action_max_age)
        reasons["no_action"], reasons["stale_action"] = action.missing, action.stale
        self.needs: dict[str, np.ndarray] = {config.reference: ref_idx}
        for name in config.cameras:
            if name == config.reference:
                continue
            cam = sample_asof(index.images[name].stream(), times, config.camera_max_age)
            reasons[f"no_image:{name}"], reasons[f"stale_image:{name}"] = cam.missing, cam.stale
            self.needs[name] = cam.index
        state_table = index.state.array(len(index.joints))
        action_table = index.action.array(len(index.action_names))
        self.state = units.convert(state_table[np.maximum(state.index, 0)], index.joints)
        raw_action = action_table[np.maximum(action.index, 0)]
        if index.action_joint_space:
            self.action = units.convert(raw_action, index.joints, delta=index.action_delta)
        else:
            self.action = raw_action.astype(np.float32)
        self.reasons = reasons
        self.gaps = reference_gaps(times, fps)

    def episode_of(self, segs: list[Segment]) -> np.ndarray:
        """Segment index of every frame (-1: outside every segment)."""
        out = np.full(self.times.shape, -1, np.int64)
        for i, seg in enumerate(segs):
            out[(self.times >= seg.start_ns) & (self.times < seg.end_ns)] = i
        return out


class BagConverter:
    """Converts bags into one dataset at ``output``; see the module docstring."""

    def __init__(self, config: BagConfig, output: Path, overwrite: bool = False, compute_stats: bool = True) -> None:
        config.validate()
        self.config, self.output, self.overwrite, self.compute_stats = config, Path(output), overwrite, compute_stats
        self.dataset = None
        self.features: dict[str, dict] | None = None
        self.fps: int | None = config.fps
        self.joints: list[str] | None = config.joints
        settings = asdict(config)
        settings["units"] = asdict(config.units)
        self.report = ConversionReport(output=str(self.output), kind="bags", settings=settings)

    # ------------------------------------------------------------------------------------------------ API
    def convert(self, bags: list[Path]) -> ConversionReport:
        """Convert every bag (errors are recorded, not raised), finalize, check videos and compute statistics."""
        start = time.perf_counter()
        if self.output.exists() and not self.overwrite:
            raise DatasetExistsError(f"{self.output} exists; choose a new output directory or pass --overwrite")
        for bag in find_bags(bags):
            try:
                self._convert_bag(bag)
            except BagError as exc:
                self.report.error(bag, str(exc).removeprefix(f"{bag}: "))
        close_conversion(
            self.dataset,
            self.output,
            self.config.repo_id,
            self.config.use_videos,
            self.compute_stats,
            self.report,
            start,
        )
        return self.report

    # -------------------------------------------------------------------------------------------- one bag
    def _convert_bag(self, bag: Path) -> None:
        index = index_bag(bag, self.config, self.joints)
        self.joints = self.joints or index.joints
        self.report.sources[str(bag)] = {"topics": {t: s.to_dict() for t, s in index.topics.items()}}
        ref_times = index.images[self.config.reference].stream().times
        rate = estimate_fps(ref_times) if np.unique(ref_times).size > 1 else None
        if self.fps is None:
            if rate is None:
                raise BagError(f"{bag}: cannot estimate the frame rate from one reference image; pass --fps")
            self.fps = max(1, round(rate))
        plan = _Plan(index, self.config, self.fps)
        source = self.report.sources[str(bag)]
        source.update(reference_gaps=len(plan.gaps), reference_fps=None if rate is None else round(rate, 2))
        if rate is not None and (rate < 0.9 * self.fps or (self.config.fps is None and rate > 1.1 * self.fps)):
            source["warning"] = f"reference camera at {rate:.1f} Hz but the dataset has {self.fps} fps"
        segs = self._segments(index)
        tasks = [self._task(index, seg, plan) for seg in segs]
        self._ensure_dataset(index, bag)
        self._write(bag, index, plan, segs, tasks)

    def _segments(self, index: BagIndex) -> list[Segment]:
        if not self.config.episode_topic:
            return [Segment(-(2**62), 2**62, label="bag")]
        segs, warnings = segments(index.events, index.end_ns + 1)
        self.report.sources[str(index.path)]["episode_warnings"] = warnings
        if not segs:
            raise BagError(f"{index.path}: no episode on {self.config.episode_topic} ({len(index.events)} messages)")
        return segs

    def _task(self, index: BagIndex, seg: Segment, plan: _Plan) -> str | None:
        """Episode task: the episode message's text, else the task topic as of the episode start, else --task."""
        if seg.task:
            return seg.task
        if index.tasks.times:
            inside = plan.times[(plan.times >= seg.start_ns) & (plan.times < seg.end_ns)]
            first = int(inside[0]) if inside.size else max(seg.start_ns, index.start_ns)
            stream = index.tasks.stream()
            before = np.flatnonzero(stream.times <= first)
            after = np.flatnonzero((stream.times > first) & (stream.times < seg.end_ns))
            pick = before[-1] if before.size else (after[0] if after.size else None)
            if pick is not None:
                return index.task_texts[int(stream.indices[pick])]
        return self.config.task

    def _ensure_dataset(self, index: BagIndex, bag: Path) -> None:
        features = self._features(index, bag)
        if self.features is None:
            self.dataset = create_dataset(
                self.output,
                self.fps,
                features,
                self.config.robot_type,
                self.config.repo_id,
                self.config.vcodec,
                self.overwrite,
            )
            self.features = features
        elif features != self.features:
            diff = sorted(k for k in features if features[k] != self.features.get(k))
            raise BagError(f"{bag}: features {diff} differ from the first bag's; convert it into another dataset")

    def _features(self, index: BagIndex, bag: Path) -> dict[str, dict]:
        features: dict[str, dict] = {}
        for name, topic in self.config.cameras.items():
            size = self.config.image_size or index.image_shapes.get(name) or self._peek_size(index, name, topic)
            features[f"observation.images.{name}"] = image_feature(*size, use_video=self.config.use_videos)
        units = self.config.units
        state_info = {**units.info(index.joints), "topic": self.config.state_topic}
        features["observation.state"] = vector_feature(index.joints, state_info)
        if index.action_joint_space:
            action_info = {**units.info(index.joints), "topic": self.config.action_topic}
            if index.action_delta:
                action_info["delta"] = True
        else:
            action_info = {"unit": "as published", "topic": self.config.action_topic}
        features["action"] = vector_feature(index.action_names, action_info)
        return features

    def _peek_size(self, index: BagIndex, name: str, topic: str) -> tuple[int, int]:
        """(height, width) of the first decodable compressed image of a camera."""
        reader = open_reader(index.path)
        try:
            conns = [c for c in reader.connections if c.topic == topic]
            store = typestore_for(conns)
            for conn, _, raw in reader.messages(connections=conns):
                try:
                    return extract.decode_rgb(store.deserialize_cdr(raw, conn.msgtype), conn.msgtype).shape[:2]
                except Exception:  # corrupt: try the next one
                    continue
        finally:
            reader.close()
        raise BagError(f"{index.path}: no decodable image on {topic} (camera {name})")

    # ------------------------------------------------------------------------------------- second pass
    def _write(self, bag: Path, index: BagIndex, plan: _Plan, segs: list[Segment], tasks: list[str | None]) -> None:
        episode = plan.episode_of(segs)
        reasons = dict(plan.reasons)
        reasons["outside_episode"] = episode < 0
        discarded = np.array([s.discarded for s in segs] + [False])
        reasons["discarded_episode"] = (episode >= 0) & discarded[episode]
        no_task = np.array([t is None for t in tasks] + [False])
        reasons["no_task"] = (episode >= 0) & no_task[episode]
        drop = np.zeros(plan.times.shape, bool)
        for mask in reasons.values():
            drop |= mask
        reports = []
        for i, seg in enumerate(segs):
            rep = EpisodeReport(source=str(bag), label=seg.label, task=tasks[i])
            in_seg = episode == i
            rep.candidate_frames = int(in_seg.sum())
            rep.dropped = {k: int((m & in_seg).sum()) for k, m in reasons.items() if (m & in_seg).any()}
            if seg.discarded:
                rep.notes.append("discarded by the episode topic")
            reports.append(rep)
        outside = int(reasons["outside_episode"].sum())
        if outside:
            self.report.sources[str(bag)]["frames_outside_episodes"] = outside
        keep = np.flatnonzero(~drop)
        writer = _EpisodeWriter(self, bag, index, plan, segs, tasks, reports, episode)
        try:
            writer.run(keep)
        finally:
            for i, rep in enumerate(reports):
                if segs[i].discarded:
                    self.report.episodes.append(rep)
                    continue
                if rep.dataset_episode is None and rep.error is None:
                    rep.error = _empty_reason(rep)
                if rep.error:
                    self.report.error(f"{bag} [{rep.label}]", rep.error)
                self.report.episodes.append(rep)


def _empty_reason(rep: EpisodeReport) -> str:
    if rep.task is None:
        return "no task text (episode message, task topic or --task)"
    drops = ", ".join(f"{k} {v}" for k, v in sorted(rep.dropped.items()))
    return f"empty episode: none of its {rep.candidate_frames} reference frames is usable ({drops or 'no frames'})"


class _EpisodeWriter:
    """Streams the bag's images once and writes the kept frames episode by episode."""

    def __init__(self, conv: BagConverter, bag: Path, index: BagIndex, plan: _Plan, segs, tasks, reports, episode):
        self.conv, self.bag, self.index, self.plan = conv, bag, index, plan
        self.segs, self.tasks, self.reports, self.episode = segs, tasks, reports, episode
        self.dataset = conv.dataset
        self.current: int | None = None
        self.written_times: list[int] = []

    def run(self, keep: np.ndarray) -> None:
        cams = list(self.conv.config.cameras)
        needs = {name: self.plan.needs[name][keep] for name in cams}
        refcount: Counter = Counter()
        wanted: dict[str, set[int]] = defaultdict(set)
        for name in cams:
            for k in needs[name].tolist():
                refcount[(name, k)] += 1
                wanted[self.conv.config.cameras[name]].add(k)
        camera_of = {topic: name for name, topic in self.conv.config.cameras.items()}
        cache: dict[tuple[str, int], np.ndarray | None] = {}
        counters: dict[str, int] = defaultdict(int)
        size = {n: self.conv.features[f"observation.images.{n}"]["shape"][:2] for n in cams}
        nxt = 0
        reader = open_reader(self.bag)
        try:
            topics = {c.topic for c in self.index.connections}
            conns = [c for c in reader.connections if c.topic in topics]  # the first pass's query, in bag order
            store = typestore_for(conns)
            for conn, _, raw in reader.messages(connections=conns):
                k = counters[conn.topic]
                counters[conn.topic] += 1
                if k not in wanted.get(conn.topic, ()):
                    continue
                name = camera_of[conn.topic]
                try:
                    image = extract.decode_rgb(store.deserialize_cdr(raw, conn.msgtype), conn.msgtype)
                    if self.conv.config.image_size is not None:
                        image = resize(image, self.conv.config.image_size)
                    if image.shape[:2] != tuple(size[name]):
                        raise extract.MessageError(f"image size {image.shape[:2]} != {tuple(size[name])}")
                except Exception:  # reported per frame below
                    image = None
                cache[(name, k)] = image
                while nxt < keep.size and all((n, int(needs[n][nxt])) in cache for n in cams):
                    self._emit(int(keep[nxt]), {n: cache[(n, int(needs[n][nxt]))] for n in cams})
                    for n in cams:
                        key = (n, int(needs[n][nxt]))
                        refcount[key] -= 1
                        if refcount[key] == 0:
                            del cache[key]
                    nxt += 1
            self._close_episode()
        except Exception as exc:  # reading or writing stopped: the open and the later episodes are not written
            if self.current is not None:
                self.dataset.clear_episode_buffer()
            for rep in self.reports:
                if rep.dataset_episode is None and rep.error is None:
                    rep.error = f"not written: conversion of the bag stopped ({type(exc).__name__}: {exc})"
        finally:
            reader.close()

    def _emit(self, frame: int, images: dict[str, np.ndarray | None]) -> None:
        seg = int(self.episode[frame])
        if seg != self.current:
            self._close_episode()
            self.current = seg
        rep = self.reports[seg]
        bad = [n for n, img in images.items() if img is None]
        if bad:
            for n in bad:
                rep.dropped[f"corrupt_image:{n}"] = rep.dropped.get(f"corrupt_image:{n}", 0) + 1
            return
        data = {f"observation.images.{n}": img for n, img in images.items()}
        data["observation.state"] = self.plan.state[frame]
        data["action"] = self.plan.action[frame]
        data["task"] = self.tasks[seg]
        self.dataset.add_frame(data)
        rep.written_frames += 1
        self.written_times.append(int(self.plan.times[frame]))

    def _close_episode(self) -> None:
        if self.current is None:
            return
        rep, times = self.reports[self.current], np.asarray(self.written_times, dtype=np.int64)
        self.current, self.written_times = None, []
        if not rep.written_frames:
            return
        try:
            save_episode(self.dataset)
        except Exception as exc:  # this episode is lost; the next ones go on
            self.dataset.clear_episode_buffer()
            rep.error = f"saving the episode failed: {type(exc).__name__}: {exc}"
            return
        rep.dataset_episode = self.dataset.meta.total_episodes - 1
        rep.source_start_s = int(times[0]) / NS
        rep.gaps = [[(g0 - int(times[0])) / NS, g / NS] for g0, g in reference_gaps(times, self.conv.fps)]
