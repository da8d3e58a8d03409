"""rynnvla-eval-sim without ROS: the Wilson interval, per-episode records and their summary, results.json (atomic,
resumable only with the same settings), report.md, the video timeline and the command line."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from rynnvla_ros.eval_results import RESULTS_FILE, ResultsError, keeps_video, records_video
from rynnvla_ros.tasks.block_in_circle import TASK_TEXT
from rynnvla_ros.tasks.evaluate_sim import SimEvalConfig, main, parse_args, run_evaluation
from rynnvla_ros.tasks.sim_eval import (
    REPORT_FILE,
    SimEpisode,
    SimResults,
    checkpoint_sha256,
    planned_seeds,
    report_markdown,
    resample_frames,
    resume,
    summarize,
    wilson_interval,
    write_report,
)


def _episode(seed: int, success: bool, **kw) -> SimEpisode:
    defaults = {
        "time_to_success_s": 10.0 + seed if success else None,
        "duration_s": 10.0 + seed if success else 40.0,
        "final_distance_m": 0.01 * (seed + 1),
        "chunks": 5 * (seed + 1),
    }
    return SimEpisode(seed=seed, success=success, **(defaults | kw))


SETTINGS = {
    "checkpoint": "/ck",
    "checkpoint_sha256": "abc",
    "mode": "continuous",
    "world_model": False,
    "task": TASK_TEXT,
    "episodes": 3,
    "first_seed": 5,
    "timeout_s": 40.0,
    "device": "cpu",
    "command": "rynnvla-eval-sim --checkpoint /ck --out /o",
}


def test_wilson_interval_matches_the_closed_forms():
    z2 = 1.959963984540054**2
    # no successes: upper bound z^2 / (n + z^2); all successes: the mirror image
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(1 - high) and (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson_interval(40, 50)  # a textbook value: 0.8 of 50 -> 0.6696 .. 0.8876
    assert (low, high) == pytest.approx((0.6696, 0.8876), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_summary_counts_successes_times_and_distances():
    episodes = [
        _episode(0, True, chunk_latency_mean_s=0.2),  # 5 chunks
        _episode(1, False, chunk_latency_mean_s=0.5),  # 10 chunks
        _episode(2, True),
        _episode(3, False, final_distance_m=None),
    ]
    s = summarize(episodes)
    assert (s["episodes"], s["successes"], s["rate"]) == (4, 2, 0.5)
    assert s["ci95"] == pytest.approx(list(wilson_interval(2, 4)))
    assert s["mean_time_to_success_s"] == pytest.approx(11.0)  # seeds 0 and 2: 10 and 12 s
    assert s["median_final_distance_m"] == pytest.approx(0.02)  # 0.01, 0.02, 0.03 (the missing one left out)
    assert s["mean_chunks"] == pytest.approx(12.5)
    assert s["mean_chunk_latency_s"] == pytest.approx((5 * 0.2 + 10 * 0.5) / 15)  # over the chunks that were timed
    empty = summarize([])
    assert (empty["episodes"], empty["rate"], empty["mean_time_to_success_s"]) == (0, None, None)


def test_results_round_trip_and_replace_by_seed(tmp_path):
    results = SimResults(dict(SETTINGS))
    results.add(_episode(6, False))
    results.add(_episode(5, True))
    results.add(_episode(6, True))  # the same seed again replaces the record
    assert [(e.seed, e.success) for e in results.episodes] == [(5, True), (6, True)]
    results.save(tmp_path)
    data = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert data["summary"]["successes"] == 2 and data["settings"] == SETTINGS
    assert not list(tmp_path.glob(".results*"))  # the temporary file was renamed over results.json
    loaded = SimResults.load(tmp_path)
    assert loaded == results and loaded.done_seeds() == {5, 6}
    assert SimResults.load(tmp_path / "nothing") is None
    (tmp_path / RESULTS_FILE).write_text('{"format_version": 1, "settings": {}}')
    with pytest.raises(ResultsError, match="not a results file of rynnvla-eval-sim"):
        SimResults.load(tmp_path)


def test_resume_needs_the_same_settings_and_seeds():
    stored = SimResults(dict(SETTINGS), [_episode(5, True), _episode(6, False)])
    seeds = planned_seeds(5, 3)
    assert seeds == [5, 6, 7]
    assert resume(None, SETTINGS, seeds).episodes == []
    # same settings (the number of episodes and the device may change): the stored episodes are kept
    again = resume(stored, SETTINGS | {"episodes": 10, "device": "cuda"}, planned_seeds(5, 10))
    assert again.done_seeds() == {5, 6} and again.settings["episodes"] == 10
    for key, value in (("timeout_s", 20.0), ("mode", "discrete"), ("world_model", True), ("checkpoint_sha256", "x"),
                       ("first_seed", 0), ("task", "other"), ("checkpoint", "/other")):  # fmt: skip
        with pytest.raises(ResultsError, match=f"{key}: stored .* now .*--fresh"):
            resume(stored, SETTINGS | {key: value}, seeds)
    with pytest.raises(ResultsError, match="seeds 6, outside this run's seeds 5"):
        resume(stored, SETTINGS | {"episodes": 1}, planned_seeds(5, 1))


def test_report_names_settings_success_episodes_and_the_command(tmp_path):
    results = SimResults(dict(SETTINGS) | {"notes": ["a note"]})
    results.add(
        _episode(5, True, final_distance_m=0.01, chunk_latency_mean_s=0.25, chunk_latency_max_s=1.5,
                 video="videos/seed0005_success.mp4")
    )  # fmt: skip
    results.add(
        _episode(6, False, final_distance_m=0.02, final_inside=True, final_held=True, message="no action chunk")
    )
    text = report_markdown(results)
    for expected in (
        "| checkpoint | `/ck` |",
        "| action decoding (mode) | continuous |",
        "| world model | off |",
        "| seeds | 5-7 |",
        "| timeout per episode | 40.0 s |",
        f"| task (instruction) | {TASK_TEXT} |",
        "| 2 | 1 | 50.0 % | 9.5 - 90.5 % | 15.0 s | 0.015 m | 0.25 s |",
        "1 of 3 episodes not run yet",
        "- seed 5: success in 15.0 s, final distance 0.010 m, 30 chunks (latency mean 0.25 s, max 1.50 s), video "
        "`videos/seed0005_success.mp4`",
        "- seed 6: failure (timeout 40 s), final distance 0.020 m, block inside, held, 35 chunks, no action chunk",
        "```bash\nrynnvla-eval-sim --checkpoint /ck --out /o\n```",
        "- a note",
    ):
        assert expected in text, expected
    assert write_report(results, tmp_path).read_text() == text


def test_video_choices():
    assert [records_video("first", i) for i in range(3)] == [True, False, False]
    assert all(records_video("all", i) and records_video("failures", i) for i in range(3))
    assert not records_video("none", 0)
    assert keeps_video("failures", 3, success=False) and not keeps_video("failures", 3, success=True)
    assert keeps_video("all", 1, success=True) and not keeps_video("first", 1, success=False)
    with pytest.raises(ValueError):
        records_video("some", 0)


def test_resampling_plays_in_real_time():
    frames = [np.full((2, 2, 3), v, np.uint8) for v in (1, 2, 3)]
    ns = 1_000_000_000
    # frames at 0.05, 0.12 and 0.5 s (a slow renderer), a 1 s episode from 0 s at 10 fps: 10 frames
    out = resample_frames([int(0.12 * ns), int(0.05 * ns), int(0.5 * ns)], [frames[1], frames[0], frames[2]], 0, ns)
    assert [int(f[0, 0, 0]) for f in out] == [1, 1, 2, 2, 2, 3, 3, 3, 3, 3]
    assert resample_frames([], [], 0, ns) == []
    assert len(resample_frames([0], frames[:1], 0, int(6 * ns), fps=10)) == 60


def test_checkpoint_fingerprint_follows_the_content(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub" / "w.bin").write_bytes(b"\x00" * 10)
    first = checkpoint_sha256(tmp_path)
    assert checkpoint_sha256(tmp_path) == first and len(first) == 64
    (tmp_path / "sub" / "w.bin").write_bytes(b"\x00" * 9 + b"\x01")
    assert checkpoint_sha256(tmp_path) != first
    with pytest.raises(FileNotFoundError):
        checkpoint_sha256(tmp_path / "missing")


def test_command_line_defaults_and_the_reproducing_command(tmp_path):
    from rynnvla_ros.default_model import default_checkpoint_dir

    cfg = parse_args(["--out", str(tmp_path)])
    assert (cfg.episodes, cfg.seed, cfg.timeout, cfg.mode, cfg.world_model, cfg.videos, cfg.task) == (
        50, 0, 40.0, "continuous", False, "first", TASK_TEXT,
    )  # fmt: skip
    assert cfg.checkpoint_dir() == default_checkpoint_dir().resolve()
    assert parse_args(["--out", "o", "--world-model"]).world_model
    assert not parse_args(["--out", "o", "--world-model", "--no-world-model"]).world_model
    with pytest.raises(SystemExit):
        parse_args(["--out", "o", "--mode", "fast"])
    # the report's command gives back the same settings
    cfg = parse_args(["--out", str(tmp_path), "--episodes", "7", "--seed", "3", "--timeout", "12.5", "--mode",
                      "discrete", "--world-model", "--task", "it's a task", "--videos", "failures"])  # fmt: skip
    again = parse_args(shlex.split(cfg.command())[1:])
    assert again.settings("x") == cfg.settings("x")
    assert shlex.split(cfg.command())[0] == "rynnvla-eval-sim"


def test_a_finished_run_is_not_run_again_and_other_settings_are_refused(tmp_path, capsys):
    """Resuming a complete run starts no graph; a run with other settings stops before any episode."""
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text("{}")
    out = tmp_path / "out"
    cfg = SimEvalConfig(out, checkpoint=str(ck), episodes=2, seed=3, timeout=5.0, progress=False)
    done = SimResults(cfg.settings(checkpoint_sha256(ck)), [_episode(3, True), _episode(4, False)])
    done.save(out)
    results = run_evaluation(cfg)  # nothing left to do: no ROS graph is started
    assert results.done_seeds() == {3, 4}
    assert "| 2 | 1 | 50.0 % |" in (out / REPORT_FILE).read_text()
    before = (out / RESULTS_FILE).read_text()
    assert main(["--checkpoint", str(ck), "--episodes", "2", "--seed", "3", "--timeout", "6", "--out", str(out)]) == 1
    assert "timeout_s: stored 5.0, now 6.0" in capsys.readouterr().err
    assert (out / RESULTS_FILE).read_text() == before
    assert main(["--checkpoint", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err
