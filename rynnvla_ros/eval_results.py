"""Files and choices shared by the evaluations (``rynnvla-eval-libero``, ``rynnvla-eval-sim``), without ROS.

Both keep a ``results.json`` with the run's settings and its finished episodes, rewritten atomically after every
episode so an interrupted run resumes (only with the same settings: :func:`check_resumable`), and both write the
videos of the episodes chosen by ``--videos``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
VIDEO_CHOICES = ("none", "first", "failures", "all")


class ResultsError(ValueError):
    """Results that cannot be used (another run's settings, a damaged file); the message says why."""


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file renamed over it (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def save_results(
    directory: Path, format_version: int, settings: Mapping[str, Any], summary: Any, episodes: Iterable[Any]
) -> Path:
    """Write ``directory``/results.json atomically: the settings, a summary and the episodes (dataclasses)."""
    data = {
        "format_version": format_version,
        "settings": settings,
        "summary": summary,
        "episodes": [asdict(e) for e in episodes],
    }
    return write_atomic(directory / RESULTS_FILE, json.dumps(data, indent=2, default=str) + "\n")


def load_results[E](
    directory: Path, format_version: int, tool: str, episode: type[E], hint: str = ""
) -> tuple[dict[str, Any], list[E]] | None:
    """The settings and episodes (as ``episode`` dataclasses) in ``directory``/results.json, None when there is none;
    ResultsError when it is not ``tool``'s results of ``format_version``. ``hint`` ends the error message."""
    path = directory / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format_version") != format_version:
            raise ResultsError(f"{path}: format_version {data.get('format_version')!r}, expected {format_version}")
        return dict(data["settings"]), [episode(**e) for e in data["episodes"]]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ResultsError(f"{path} is not a results file of {tool}: {exc}{hint}") from None


def check_resumable(old: Mapping[str, Any], new: Mapping[str, Any], keys: Iterable[str]) -> None:
    """ResultsError naming the settings that differ between a stored run and this one."""
    differ = [k for k in keys if old.get(k) != new.get(k)]
    if differ:
        detail = "; ".join(f"{k}: stored {old.get(k)!r}, now {new.get(k)!r}" for k in differ)
        raise ResultsError(f"the results in the output folder come from other settings ({detail}); "
                           "use another --out or --fresh")  # fmt: skip


def records_video(choice: str, index: int) -> bool:
    """Whether frames of the ``index``-th planned episode (or trial) are recorded (``failures``: all are, until it
    ends)."""
    if choice not in VIDEO_CHOICES:
        raise ValueError(f"videos must be one of {', '.join(VIDEO_CHOICES)}, got {choice!r}")
    return choice in ("all", "failures") or (choice == "first" and index == 0)


def keeps_video(choice: str, index: int, success: bool) -> bool:
    """Whether the ``index``-th episode's video is written once its outcome is known."""
    return records_video(choice, index) and (choice != "failures" or not success)
