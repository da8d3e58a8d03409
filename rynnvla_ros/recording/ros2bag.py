"""``ros2 bag record`` as the recording backend on a full ROS 2 install (Jazzy, Kilted): one process per episode.

The recorder node starts ``ros2 bag record --output <bag> --storage mcap --topics ...`` for an episode, waits until
the process subscribes to the episode topic (``ready``), then publishes the episode's task and ``start:<task>``
(transient local, so they reach the bag even when the subscription matched late); to finish it publishes
``stop`` or ``discard``, lets the markers arrive, and ends the process with SIGINT, on which rosbag2 closes the bag.
Discarded bags are deleted. The bags look like those of the in-process backend (:mod:`.episode_recorder`).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from rynnvla_ros.recording.bag_writer import RecordingError, TopicCounters, WriteSummary, describe_os_error
from rynnvla_ros.recording.episode_recorder import EpisodeInfo, EpisodeResult, Episodes, RecorderConfig


def ros2bag_unavailable(timeout: float = 20.0) -> str | None:
    """None when ``ros2 bag record`` can run here, else the reason it cannot."""
    exe = shutil.which("ros2")
    if exe is None:
        return "the ros2 command is not on PATH (no sourced ROS 2 installation)"
    try:
        done = subprocess.run([exe, "bag", "record", "--help"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ros2 bag record --help` failed: {exc}"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"`ros2 bag record` is not available (rosbag2 not installed?): {tail[0]}"
    return None


def record_command(path: Path, topics: Sequence[str], storage: str, metadata: dict[str, str]) -> list[str]:
    """The ``ros2 bag record`` command line for one episode."""
    cmd = ["ros2", "bag", "record", "--output", str(path), "--storage", storage, "--disable-keyboard-controls"]
    cmd += ["--topics", *topics]
    if metadata:
        cmd += ["--custom-data", *(f"{k}={v}" for k, v in metadata.items())]
    return cmd


def summarize_bag(path: Path, error: str | None = None) -> WriteSummary:
    """Message counts from a bag's ``metadata.yaml`` (unreadable when it is missing)."""
    meta = Path(path) / "metadata.yaml"
    if not meta.is_file():
        return WriteSummary(Path(path), {}, error or f"{meta} missing: the bag was not closed", readable=False)
    info = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
    counters = {}
    for entry in info.get("topics_with_message_count") or []:
        counters[entry["topic_metadata"]["name"]] = TopicCounters(written=int(entry["message_count"]))
    files = [p for p in Path(path).iterdir() if p.is_file() and p.name != "metadata.yaml"]
    if files and counters:
        total, size = sum(c.written for c in counters.values()), sum(p.stat().st_size for p in files)
        for c in counters.values():  # rosbag2 does not count bytes per topic: share the file size
            c.bytes = size * c.written // max(total, 1)
    return WriteSummary(Path(path), counters, error)


class Ros2BagEpisodes(Episodes):
    """Episodes recorded by ``ros2 bag record`` subprocesses; see the module docstring."""

    def __init__(
        self,
        config: RecorderConfig,
        topics: Sequence[str],
        *,
        startup_timeout: float = 15.0,
        stop_timeout: float = 15.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__(config, clock)
        self.topics = list(topics)
        self.startup_timeout, self.stop_timeout = startup_timeout, stop_timeout
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def alive(self) -> bool:
        """Whether the episode's ``ros2 bag record`` process is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, task: str, ready: Callable[[], bool]) -> EpisodeInfo:
        """Start ``ros2 bag record`` for a new episode and wait until ``ready()`` (it subscribed); RecordingError
        when it cannot start, exits, or is not ready in time."""
        info = self._next_episode(task)
        log_path = info.path.with_name(info.path.name + ".ros2bag.log")
        metadata = {"rynnvla.task": info.task, "rynnvla.episode": str(info.index)}
        cmd = record_command(info.path, self.topics, self.config.storage, metadata)
        try:
            self._log = log_path.open("w", encoding="utf-8")
            self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            self._close_log()
            raise RecordingError(describe_os_error(exc, "cannot start `ros2 bag record`")) from exc
        deadline = time.monotonic() + self.startup_timeout
        while not ready():
            exited = self._proc.poll() is not None
            if exited or time.monotonic() > deadline:
                why = "exited" if exited else f"did not subscribe within {self.startup_timeout:g} s"
                self._end_process()
                raise RecordingError(f"`ros2 bag record` {why}: {_tail(log_path)}")
            time.sleep(0.05)
        self._info = info
        self.episodes += 1
        return info

    def _finish(self, command: str) -> EpisodeResult:
        """End the process (rosbag2 closes the bag on SIGINT); a discarded bag is deleted."""
        info = self._info
        if info is None:
            raise RecordingError(f"no episode is recording (nothing to {command})")
        self._info = None
        end_ns = self.clock()
        code = self._end_process()
        error = None if code in (0, -signal.SIGINT) else f"`ros2 bag record` exited with status {code}"
        result = EpisodeResult(info, end_ns, summarize_bag(info.path, error), kept=command == "stop")
        if command == "discard":
            self._delete_discarded(result)
        return result

    def _end_process(self) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL, each given ``stop_timeout`` s; the exit status (None if it never
        ended)."""
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                if proc.poll() is None:
                    proc.send_signal(sig)
                try:
                    code = proc.wait(timeout=self.stop_timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._close_log()
        return code

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return f"(no log at {path})"
    return " | ".join(text[-lines:]) or f"(empty log {path})"
