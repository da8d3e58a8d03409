"""rynnvla-eval-libero through the ROS graph with a tiny LIBERO model: 1 task x 2 trials x 3 steps writes the
JSON, the table, a video (front | wrist | predicted front | predicted wrist) and the report with its plot; an
interrupted run resumes and the re-run trial is identical (lock-step is deterministic)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rynnvla_ros.eval_results import RESULTS_FILE, ResultsError
from rynnvla_ros.libero.evaluate import EvalConfig, parse_args, planned_episodes, run_evaluation

TASK = "open the middle drawer of the cabinet"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from rynnvla_ros.inference.tiny_checkpoint import make_tiny_libero_checkpoint

    return make_tiny_libero_checkpoint(tmp_path_factory.mktemp("tiny_libero"), image_size=32, time_horizon=5)


def test_command_line_defaults_are_the_protocols(tmp_path):
    cfg = parse_args(["--checkpoint", "ck", "--out", str(tmp_path)])
    assert (cfg.suites, cfg.trials, cfg.seeds, cfg.wait_steps, cfg.max_steps) == (["libero_goal"], 50, [0], 10, 0)
    assert (cfg.mode, cfg.lockstep, cfg.replan_steps, cfg.image_size) == ("continuous", True, 0, 256)
    settings = EvalConfig(tmp_path, ["libero_spatial", "libero_10"], checkpoint="ck").settings()
    assert settings["max_steps"] == {"libero_spatial": 220, "libero_10": 520}
    # trial i of every task uses initial state i; seeds repeat the whole plan
    cfg = EvalConfig(tmp_path, ["libero_goal"], checkpoint="ck", tasks=[3, 7], trials=3, seeds=[0, 1])
    plan = planned_episodes(cfg)
    assert plan[:4] == [(0, "libero_goal", 3, 0), (0, "libero_goal", 3, 1), (0, "libero_goal", 3, 2),
                        (0, "libero_goal", 7, 0)]  # fmt: skip
    assert len(plan) == 12 and plan[-1] == (1, "libero_goal", 7, 2)
    assert len(planned_episodes(EvalConfig(tmp_path, ["libero_object"], checkpoint="ck", trials=1))) == 10


@pytest.mark.ros
@pytest.mark.sim
@pytest.mark.slow
def test_harness_writes_a_complete_report_and_resumes(tmp_path, checkpoint):
    import av
    from PIL import Image

    out = tmp_path / "eval"
    cfg = EvalConfig(
        out, ["libero_goal"], checkpoint=str(checkpoint), tasks=[0], trials=2, max_steps=3, world_model=True,
        videos="first", device="cpu", progress=False, stall_timeout=180.0,  # a stall fails, not hangs the suite
    )  # fmt: skip
    results = run_evaluation(cfg)

    data = json.loads((out / RESULTS_FILE).read_text())
    episodes = data["episodes"]
    assert [(e["trial"], e["init_state"]) for e in episodes] == [(0, 0), (1, 1)]  # trial i: initial state i
    for e in episodes:
        assert (e["suite"], e["task_id"], e["task"], e["seed"]) == ("libero_goal", 0, TASK, 0)
        assert (e["state"], e["success"], e["steps"], e["max_steps"], e["wait_steps"], e["chunks"]) == (
            "timeout", False, 3, 3, 10, 1,
        )  # fmt: skip
        assert len(e["final_state"]) == 8
    assert data["settings"]["max_steps"] == {"libero_goal": 3} and data["settings"]["wait_steps"] == 10
    assert data["summary"]["suites"]["libero_goal"] == {"successes": 0, "trials": 2, "rate": 0.0}
    table = (out / "results.md").read_text()
    assert f"| libero_goal | 0 | {TASK} | 0 / 2 | 0.0 % |" in table
    # the first trial's video: the observation after the wait steps and one per step; four panels side by side
    assert episodes[0]["video"] == "videos/libero_goal_task00_trial00_seed0_timeout.mp4" and not episodes[1]["video"]
    with av.open(str(out / episodes[0]["video"])) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (256, 4 * 256, 3)
    assert frames[-1][:, 512:].std() > 0  # the world model's predictions are there (not the black placeholder)
    with Image.open(out / "success_rate.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 100
    report = (out / "report.md").read_text()
    assert "success_rate.png" in report and episodes[0]["video"] in report and "10 steps of the dummy action" in report
    assert len(results.episodes) == 2

    # an interrupted run: trial 1 never finished; the same command resumes with it alone
    data["episodes"] = episodes[:1]
    (out / RESULTS_FILE).write_text(json.dumps(data))
    cfg.world_model = False
    resumed = run_evaluation(cfg)
    again = json.loads((out / RESULTS_FILE).read_text())["episodes"]
    assert again[0] == episodes[0]  # untouched
    assert again[1]["trial"] == 1 and again[1]["wall_time_s"] != episodes[1]["wall_time_s"]
    # lock-step is deterministic: the re-run trial (a new simulator replaying trial 0's reset first) ends the same
    np.testing.assert_array_equal(again[1]["final_state"], episodes[1]["final_state"])
    assert len(resumed.episodes) == 2
    # nothing left to do: no episode runs again; other settings are refused
    assert json.loads(json.dumps([e.__dict__ for e in run_evaluation(cfg).episodes])) == again
    cfg.mode = "discrete"
    with pytest.raises(ResultsError, match="mode: stored 'continuous', now 'discrete'"):
        run_evaluation(cfg)
