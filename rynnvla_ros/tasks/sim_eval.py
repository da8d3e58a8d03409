"""Results of a simulated block-in-circle evaluation (``rynnvla-eval-sim``), without ROS.

One :class:`SimEpisode` per seeded episode; :class:`SimResults` holds them with the run's settings and is written to
``results.json`` atomically after every episode, so an interrupted run resumes where it stopped (only with the same
settings: :func:`resume`). :func:`write_report` writes ``report.md`` (settings, the success rate with its 95 % Wilson
interval, one line per episode, the command that reproduces the run). :func:`resample_frames` turns the frames
recorded at their own stamps into a constant-rate video timeline.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rynnvla_ros.eval_results import (
    ResultsError,
    check_resumable,
    load_results,
    save_results,
    write_atomic,
)

PROG = "rynnvla-eval-sim"
REPORT_FILE = "report.md"
FORMAT_VERSION = 1
VIDEO_FPS = 10
"""Frames per second of the episode videos (the policy's control period is 0.1 s)."""
RESUME_KEYS = ("checkpoint", "checkpoint_sha256", "mode", "world_model", "task", "timeout_s", "first_seed")
"""Settings that must match for a run to continue the results stored in its output folder."""
Z_95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal distribution


@dataclass
class SimEpisode:
    """One finished episode of the block-in-circle task."""

    seed: int
    """Layout seed (``~/reset_task``)."""
    success: bool
    time_to_success_s: float | None
    """From the first camera frame after the reset to the first task state with success; None on failure."""
    duration_s: float
    """Episode time run: the time to success, or the timeout."""
    final_distance_m: float | None
    """Block centre to circle centre (horizontal) in the last task state; None when none arrived."""
    final_inside: bool = False
    final_held: bool = False
    chunks: int = 0
    """Action chunks planned from frames after the reset and received during the episode."""
    chunk_latency_mean_s: float | None = None
    chunk_latency_max_s: float | None = None
    """From a chunk's observation stamp to its arrival here (a chunk whose rows are all past is not executed)."""
    reset_s: float = 0.0
    """Wall time from the reset request to the first frame and joint state after it."""
    wall_time_s: float = 0.0
    video: str = ""
    message: str = ""


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a success rate (95 % by default); (0, 1) when there are no trials."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n} trials")
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(episodes: Sequence[SimEpisode]) -> dict[str, Any]:
    """Episodes, successes, rate and its 95 % Wilson interval, mean time to success, median final distance."""
    n = len(episodes)
    successes = sum(e.success for e in episodes)
    times = [e.time_to_success_s for e in episodes if e.success and e.time_to_success_s is not None]
    distances = [e.final_distance_m for e in episodes if e.final_distance_m is not None]
    low, high = wilson_interval(successes, n)
    timed = [e for e in episodes if e.chunks and e.chunk_latency_mean_s is not None]
    chunks = sum(e.chunks for e in timed)
    return {
        "episodes": n,
        "successes": successes,
        "rate": successes / n if n else None,
        "ci95": [low, high],
        "mean_time_to_success_s": statistics.fmean(times) if times else None,
        "median_final_distance_m": statistics.median(distances) if distances else None,
        "mean_chunks": statistics.fmean(e.chunks for e in episodes) if episodes else None,
        "mean_chunk_latency_s": sum(e.chunk_latency_mean_s * e.chunks for e in timed) / chunks if chunks else None,
    }


def planned_seeds(first_seed: int, episodes: int) -> list[int]:
    """Layout seeds of a run: episode i uses ``first_seed + i``."""
    return [first_seed + i for i in range(episodes)]


def checkpoint_sha256(directory: str | Path) -> str:
    """SHA-256 over a checkpoint folder: every file's relative path and content, in path order."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder {root} does not exist")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class SimResults:
    """Settings of a run and its finished episodes (one per seed)."""

    settings: dict[str, Any]
    episodes: list[SimEpisode] = field(default_factory=list)

    def done_seeds(self) -> set[int]:
        """Seeds of the finished episodes."""
        return {e.seed for e in self.episodes}

    def add(self, episode: SimEpisode) -> None:
        """Add (or replace) the episode of one seed."""
        self.episodes = sorted([e for e in self.episodes if e.seed != episode.seed] + [episode], key=lambda e: e.seed)

    def summary(self) -> dict[str, Any]:
        """:func:`summarize` of the episodes."""
        return summarize(self.episodes)

    def save(self, directory: Path) -> Path:
        """Write ``results.json`` atomically (a temporary file renamed over the old one)."""
        return save_results(directory, FORMAT_VERSION, self.settings, self.summary(), self.episodes)

    @classmethod
    def load(cls, directory: Path) -> SimResults | None:
        """The results stored in ``directory``, or None when there are none."""
        stored = load_results(directory, FORMAT_VERSION, PROG, SimEpisode, "; use --fresh")
        return None if stored is None else cls(*stored)


def resume(stored: SimResults | None, settings: Mapping[str, Any], seeds: Iterable[int]) -> SimResults:
    """The results a run with ``settings`` and ``seeds`` continues: the stored ones when their settings match
    (:data:`RESUME_KEYS`) and they hold no seed outside ``seeds``; ResultsError saying what differs otherwise."""
    if stored is None:
        return SimResults(dict(settings))
    check_resumable(stored.settings, settings, RESUME_KEYS)
    seeds = set(seeds)
    extra = sorted(stored.done_seeds() - seeds)
    if extra:
        raise ResultsError(
            f"the results in the output folder hold episodes of seeds {_seed_range(extra)}, outside this run's seeds "
            f"{_seed_range(sorted(seeds))}; ask for more --episodes, or use another --out or --fresh"
        )
    return SimResults(dict(settings), list(stored.episodes))


def _seed_range(seeds: Sequence[int]) -> str:
    if not seeds:
        return "none"
    if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _episode_line(e: SimEpisode) -> str:
    outcome = f"success in {e.time_to_success_s:.1f} s" if e.success else f"failure (timeout {e.duration_s:.0f} s)"
    parts = [f"seed {e.seed}: {outcome}", f"final distance {_num(e.final_distance_m, '.3f', ' m')}"]
    if not e.success and e.final_distance_m is not None:
        parts.append("block " + ("inside" if e.final_inside else "outside") + (", held" if e.final_held else ""))
    latency = ""
    if e.chunks and e.chunk_latency_mean_s is not None:
        latency = f" (latency mean {e.chunk_latency_mean_s:.2f} s, max {_num(e.chunk_latency_max_s, '.2f', ' s')})"
    parts.append(f"{e.chunks} chunks{latency}")
    if e.video:
        parts.append(f"video `{e.video}`")
    if e.message:
        parts.append(e.message)
    return "- " + ", ".join(parts)


def report_markdown(results: SimResults) -> str:
    """The report: settings, success table, per-episode lines, how to reproduce."""
    s = results.settings
    summary = results.summary()
    seeds = planned_seeds(int(s.get("first_seed", 0)), int(s.get("episodes", 0)))
    lines = [
        "# Simulated block-in-circle evaluation",
        "",
        "The `so100` graph with the MuJoCo twin (`so100_controller` in its own process) and the policy"
        + (" and the world model" if s.get("world_model") else "")
        + " on the checkpoint below; each episode lays the block and the circle out from its seed "
        "(`~/reset_task`) and runs until `/so100/task_state` reports success (the block rests inside the circle, "
        "let go) or the timeout.",
        "",
        "| setting | value |",
        "|---|---|",
        f"| checkpoint | `{s.get('checkpoint', '')}` |",
        f"| checkpoint SHA-256 | `{s.get('checkpoint_sha256', '')}` |",
        f"| task (instruction) | {s.get('task', '')} |",
        f"| action decoding (mode) | {s.get('mode', '')} |",
        f"| world model | {'on' if s.get('world_model') else 'off'} |",
        f"| episodes | {s.get('episodes', '')} |",
        f"| seeds | {_seed_range(seeds)} |",
        f"| timeout per episode | {s.get('timeout_s', '')} s |",
        f"| device | {s.get('device', '')} |",
        "",
        "## Success",
        "",
        "| episodes done | successes | success rate | 95 % Wilson interval | mean time to success | median final "
        "distance | mean chunk latency |",
        "|---|---|---|---|---|---|---|",
    ]
    rate = summary["rate"]
    low, high = summary["ci95"]
    lines.append(
        f"| {summary['episodes']} | {summary['successes']} | {_num(None if rate is None else 100 * rate, '.1f', ' %')}"
        f" | {100 * low:.1f} - {100 * high:.1f} % | {_num(summary['mean_time_to_success_s'], '.1f', ' s')} | "
        f"{_num(summary['median_final_distance_m'], '.3f', ' m')} | "
        f"{_num(summary['mean_chunk_latency_s'], '.2f', ' s')} |"
    )
    left = len(seeds) - summary["episodes"]
    if left > 0:
        lines += ["", f"{left} of {len(seeds)} episodes not run yet (run the command below to continue)."]
    lines += ["", "## Episodes", ""]
    lines += [_episode_line(e) for e in results.episodes] or ["(none yet)"]
    lines += ["", "## Reproduce", "", "```bash", str(s.get("command", "")), "```", ""]
    notes = s.get("notes")
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def write_report(results: SimResults, directory: Path) -> Path:
    """Write ``report.md`` into ``directory``; its path."""
    return write_atomic(directory / REPORT_FILE, report_markdown(results))


def resample_frames(
    stamps: Sequence[int], frames: Sequence[np.ndarray], start_ns: int, end_ns: int, fps: float = VIDEO_FPS
) -> list[np.ndarray]:
    """Frames at a constant ``fps`` from ``start_ns`` to ``end_ns``: at each video time the newest frame stamped at
    or before it (the first frame before any), so the video plays in real time whatever rate the frames came at."""
    if not frames:
        return []
    if len(stamps) != len(frames):
        raise ValueError(f"{len(stamps)} stamps for {len(frames)} frames")
    order = sorted(range(len(stamps)), key=lambda i: stamps[i])
    sorted_stamps = [stamps[i] for i in order]
    period = 1e9 / fps
    count = max(1, math.ceil((end_ns - start_ns) / period))
    out = []
    for k in range(count):
        i = bisect.bisect_right(sorted_stamps, start_ns + k * period) - 1
        out.append(frames[order[max(i, 0)]])
    return out
