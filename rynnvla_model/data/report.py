"""What a conversion wrote, dropped and failed on: saved as JSON and printed as a summary."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_FILE = "conversion_report.json"
"""Name of the report every converter writes into its dataset root."""


@dataclass
class EpisodeReport:
    """One source episode (a bag, a segment of a bag, or a LIBERO demo)."""

    source: str
    label: str
    task: str | None = None
    dataset_episode: int | None = None
    """Index in the written dataset; None when the episode was not written."""
    source_start_s: float | None = None
    """Source time (s since the epoch for bags) of the first written frame."""
    candidate_frames: int = 0
    written_frames: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    """Frames dropped per reason (a frame may have several reasons)."""
    gaps: list[list[float]] = field(default_factory=list)
    """[time since episode start (s), gap (s)] between written frames longer than 1.5 frame periods."""
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class ConversionReport:
    """The whole conversion: per-source statistics, per-episode results, errors and the checks after writing."""

    output: str
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    episodes: list[EpisodeReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Failures that stopped a source or an episode from being converted, each naming the file and reason."""
    video_check: list[str] | None = None
    """Mismatches between mp4 frame counts and parquet rows (empty when all match; None when not checked)."""
    stats_file: str | None = None
    seconds: float = 0.0

    def error(self, source: str | Path, reason: str) -> None:
        """Record a failure of ``source`` (a file, or file plus episode)."""
        self.errors.append(f"{source}: {reason}")

    @property
    def written_episodes(self) -> int:
        """Episodes in the dataset."""
        return sum(1 for e in self.episodes if e.dataset_episode is not None)

    @property
    def written_frames(self) -> int:
        """Rows in the dataset."""
        return sum(e.written_frames for e in self.episodes if e.dataset_episode is not None)

    def dropped(self) -> Counter:
        """Dropped frames per reason over all episodes."""
        total: Counter = Counter()
        for e in self.episodes:
            total.update(e.dropped)
        return total

    @property
    def ok(self) -> bool:
        """True when nothing failed and the written videos match the rows."""
        return not self.errors and not self.video_check and self.written_episodes > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        d = asdict(self)
        d["totals"] = {
            "episodes_written": self.written_episodes,
            "frames_written": self.written_frames,
            "frames_dropped": dict(self.dropped()),
            "errors": len(self.errors),
        }
        return d

    def save(self, path: str | Path) -> Path:
        """Write the JSON report."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    def summary(self) -> str:
        """Human-readable summary."""
        lines = [
            f"{self.kind} -> {self.output}: {self.written_episodes} episodes, {self.written_frames} frames "
            f"in {self.seconds:.1f} s"
        ]
        for e in self.episodes:
            status = f"episode {e.dataset_episode}" if e.dataset_episode is not None else "NOT WRITTEN"
            drops = ", ".join(f"{k} {v}" for k, v in sorted(e.dropped.items())) or "none dropped"
            lines.append(f"  {e.source} [{e.label}] -> {status}: {e.written_frames}/{e.candidate_frames} ({drops})")
            lines.extend(f"    note: {n}" for n in e.notes)
        for name, info in self.sources.items():
            corrupt = {t: v["corrupt"] for t, v in info.get("topics", {}).items() if v.get("corrupt")}
            if corrupt:
                lines.append(f"  {name}: corrupt messages {corrupt}")
        if self.video_check is not None:
            lines.append("  videos: " + ("frame counts match the rows" if not self.video_check else "MISMATCH"))
            lines.extend(f"    {m}" for m in self.video_check)
        if self.stats_file:
            lines.append(f"  statistics: {self.stats_file}")
        lines.extend(f"  ERROR {m}" for m in self.errors)
        return "\n".join(lines)
