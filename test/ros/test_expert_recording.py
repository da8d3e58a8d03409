"""The record profile with the scripted expert (hardware:=sim teleop:=expert): the expert drives the twin through
the controller, the recorder writes one bag per successful episode (failed ones are discarded), the graph exits when
done, and the bags convert into a LeRobot dataset whose actions are the expert's targets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rynnvla_ros.tasks.block_in_circle import TASK_TEXT

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]


def test_expert_episodes_are_recorded_and_convert(start_process, tmp_path: Path):
    bin_dir = Path(sys.executable).parent
    bags = tmp_path / "bags"
    proc = start_process(
        bin_dir / "rynnvla-bringup", "record", "hardware:=sim", "teleop:=expert", "episodes:=2", "seed:=5",
        f"output_dir:={bags}", "record_backend:=rosbags",
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"the expert's graph did not finish 2 episodes in 240 s:\n{output[-5000:]}")
    assert proc.returncode == 0, output[-5000:]
    done = re.search(r"done: (\d+)/2 successful episodes", output)
    assert done, output[-5000:]
    successes = int(done.group(1))
    recorded = sorted(p for p in bags.iterdir() if p.is_dir())
    assert len(recorded) == successes >= 1, output[-5000:]  # failed episodes are discarded

    out = tmp_path / "dataset"
    convert = subprocess.run(
        [bin_dir / "rynnvla-convert", "bags", *recorded, "-o", out, "--split-episodes", "--no-videos",
         "--image-size", "64", "--report", tmp_path / "report.json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert convert.returncode == 0, convert.stdout + convert.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert [e["task"] for e in report["episodes"]] == [TASK_TEXT] * successes
    from rynnvla_model.data.lerobot_source import LeRobotSource

    source = LeRobotSource(out)
    states, actions = source.states(), source.actions()
    # each episode lasts over 10 s of frames at 30 Hz (fewer when a loaded machine renders more slowly)
    assert states.shape[1] == actions.shape[1] == 6 and len(states) > successes * 10 * 15
    # LeRobot's SO100 units: degrees, the gripper in % of its range
    gripper = actions[:, 5]
    assert gripper.max() > 40.0 and gripper.min() < 0.0  # the expert opened and closed the jaws
    error = np.abs(states[6:, :5] - actions[:-6, :5]).mean(axis=0)  # the arm follows the target 0.2 s later
    assert np.all(error < 5.0), error
