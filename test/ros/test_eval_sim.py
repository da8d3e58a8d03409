"""rynnvla-eval-sim through the whole so100 graph (MuJoCo twin controller as a child process, the policy on the
default checkpoint): 2 short episodes with videos, then the same command again (resumes: nothing new), other
settings (refused), and a --fresh run whose controller dies (a clear error, no hang)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]

EPISODES, FIRST_SEED, TIMEOUT = 2, 4, 6.0


def _run(*args: str | Path, timeout: float) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).parent / "rynnvla-eval-sim"), *(str(a) for a in args), "--no-progress"]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # the controller child dies with its parent (PR_SET_PDEATHSIG)
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s:\n{str(exc.stdout)[-3000:]}{exc.stderr}")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _image_size() -> tuple[int, int]:
    from rynnvla_ros.bringup import share_dir

    params = yaml.safe_load((share_dir() / "config" / "so100_controller.yaml").read_text())
    p = params["so100_controller"]["ros__parameters"]
    return int(p["image_height"]), int(p["image_width"])


def test_eval_sim_runs_resumes_refuses_other_settings_and_stops_on_a_dead_controller(tmp_path, start_process):
    import av

    from rynnvla_ros.default_model import default_checkpoint_dir

    t0 = time.monotonic()
    out = tmp_path / "eval"
    args = ["--episodes", EPISODES, "--seed", FIRST_SEED, "--timeout", TIMEOUT, "--videos", "all", "--out", out]
    run = _run(*args, timeout=170)
    first_s = time.monotonic() - t0
    log = run.stdout[-4000:] + run.stderr[-4000:]
    assert run.returncode == 0, log

    data = json.loads((out / "results.json").read_text())
    episodes = data["episodes"]
    checkpoint = str(default_checkpoint_dir().resolve())
    assert data["settings"]["checkpoint"] == checkpoint and data["settings"]["timeout_s"] == TIMEOUT
    assert [e["seed"] for e in episodes] == [FIRST_SEED, FIRST_SEED + 1]
    successes = sum(e["success"] for e in episodes)
    summary = data["summary"]
    assert (summary["episodes"], summary["successes"]) == (EPISODES, successes)
    assert summary["rate"] == pytest.approx(successes / EPISODES)
    assert summary["ci95"][0] <= summary["rate"] <= summary["ci95"][1]
    height, width = _image_size()
    for e in episodes:
        # the episode ran to success or its timeout, the controller's task state arrived, the policy's chunks too
        assert e["duration_s"] == pytest.approx(TIMEOUT) if not e["success"] else e["duration_s"] <= TIMEOUT, e
        assert e["final_distance_m"] is not None and 0.0 <= e["final_distance_m"] < 0.6, e
        assert e["video"] == f"videos/seed{e['seed']:04d}_{'success' if e['success'] else 'failure'}.mp4"
        with av.open(str(out / e["video"])) as video:
            frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
        # front | wrist, in real time at 10 frames per second
        assert frames[0].shape == (height, 2 * width, 3), e
        assert len(frames) == pytest.approx(10 * e["duration_s"], abs=1), e
        assert frames[-1][:, :width].std() > 0 and frames[-1][:, width:].std() > 0
    assert sum(e["chunks"] for e in episodes) > 0, log
    assert all(e["chunk_latency_mean_s"] > 0 for e in episodes if e["chunks"])
    report = (out / "report.md").read_text()
    assert f"| checkpoint | `{checkpoint}` |" in report and f"rynnvla-eval-sim --checkpoint {checkpoint}" in report
    assert "| world model | off |" in report and f"| seeds | {FIRST_SEED}-{FIRST_SEED + 1} |" in report

    # the same command again: the run is complete, nothing is redone (no graph, no reset)
    stored = (out / "results.json").read_text()
    videos = {p.name: p.stat().st_mtime_ns for p in (out / "videos").iterdir()}
    again = _run(*args, timeout=60)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "task reset" not in again.stdout + again.stderr
    assert (out / "results.json").read_text() == stored
    assert {p.name: p.stat().st_mtime_ns for p in (out / "videos").iterdir()} == videos

    # other settings into the same folder: refused, nothing changed
    other = _run(*args[:-2], "--timeout", "3", "--out", out, timeout=60)
    assert other.returncode == 1
    assert re.search(r"other settings \(timeout_s: stored 6\.0, now 3\.0\); use another --out or --fresh", other.stderr)
    assert (out / "results.json").read_text() == stored

    # --fresh takes the other settings; the controller dies during the episode: a clear error, not a hang
    proc = start_process(
        Path(sys.executable).parent / "rynnvla-eval-sim", "--episodes", "3", "--seed", FIRST_SEED, "--timeout", "60",
        "--videos", "none", "--fresh", "--no-progress", "--out", out,
    )  # fmt: skip
    lines: list[str] = []
    reset = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "task reset, seed" in line:
                reset.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert reset.wait(90), "".join(lines[-50:])
    controllers = [p for p in _children(proc.pid) if "so100_controller" in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(controllers) == 1, controllers
    killed = time.monotonic()
    os.kill(controllers[0], signal.SIGKILL)
    assert proc.wait(timeout=60) == 1, "".join(lines[-50:])
    reader.join(10)
    assert time.monotonic() - killed < 30
    text = "".join(lines)
    assert re.search(rf"so100_controller \(pid {controllers[0]}\) exited with code -9", text), text[-3000:]
    data = json.loads((out / "results.json").read_text())
    assert data["settings"]["timeout_s"] == 60.0 and data["settings"]["episodes"] == 3 and data["episodes"] == []
    print(f"first run (2 episodes of {TIMEOUT:g} s) {first_s:.1f} s; whole test {time.monotonic() - t0:.1f} s")
