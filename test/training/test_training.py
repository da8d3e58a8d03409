"""rynnvla-train end to end on a generated dataset: torchrun equals one process, kill + resume, beats the mean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import circling_dataset, tiny_vqgan

from rynnvla_model.data.lerobot_source import LeRobotSource
from rynnvla_model.data.samples import EpisodeSplit
from rynnvla_model.policy import RynnVLAPolicy
from rynnvla_model.training import trainer
from rynnvla_model.training.train_state import latest_checkpoint

PY = sys.executable
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 12-episode circling dataset (10 frames, 32 px) and a tiny random VQGAN."""
    root = tmp_path_factory.mktemp("train")
    return circling_dataset(root / "ds", episodes=12, length=10), tiny_vqgan(root / "vq")


def base_args(data: tuple[Path, Path], out: Path, steps: int) -> list[str]:
    ds, vq = data
    return [
        "--data.root", str(ds), "--data.image_size", "32", "--data.time_horizon", "4", "--model.vqgan", str(vq),
        "--train.output_dir", str(out), "--train.steps", str(steps), "--train.progress", "false",
        "--train.val_image_samples", "2", "--optim.lr", "1e-3", "--optim.warmup_steps", "2",
        "--model.overrides", '{"hidden_size": 32}',
    ]  # fmt: skip


def losses(out: Path) -> dict[int, float]:
    """step -> loss from log.jsonl (the last line of a step wins, as after a resume)."""
    result = {}
    for line in (out / trainer.LOG_FILE).read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            result[record["step"]] = record["loss"]
    return result


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process(data: tuple[Path, Path], tmp_path: Path) -> None:
    """Same global batch (2 x 2): one process accumulating two micro-batches, DDP and FSDP over two gloo ranks."""
    common = [*base_args(data, tmp_path / "x", 4), "--train.micro_batch_size", "2", "--train.eval_every", "0"]
    module = ["-m", "rynnvla_model.training.trainer"]
    run([PY, *module, *common, "--train.output_dir", str(tmp_path / "one"), "--train.grad_accum", "2"])
    for strategy, port in (("ddp", 29631), ("fsdp", 29632)):
        out = tmp_path / strategy
        run(
            [TORCHRUN, "--nproc_per_node", "2", "--master_port", str(port), *module, *common,
             "--train.output_dir", str(out), "--train.strategy", strategy]
        )  # fmt: skip
        one, two = losses(tmp_path / "one"), losses(out)
        assert sorted(one) == sorted(two) == [1, 2, 3, 4]
        np.testing.assert_allclose([two[s] for s in one], [one[s] for s in one], rtol=1e-4, err_msg=strategy)
    # the deployable models of both runs agree too
    a = RynnVLAPolicy.from_pretrained(tmp_path / "one" / "final", dtype=torch.float32).model.state_dict()
    b = RynnVLAPolicy.from_pretrained(tmp_path / "ddp" / "final", dtype=torch.float32).model.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_losses(data: tuple[Path, Path], tmp_path: Path) -> None:
    args = [*base_args(data, tmp_path / "x", 10), "--train.save_every", "2", "--train.eval_every", "5"]
    module = [PY, "-m", "rynnvla_model.training.trainer"]
    run([*module, *args, "--train.output_dir", str(tmp_path / "full")])
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([*module, *args, "--train.output_dir", str(out)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ckpt = latest_checkpoint(out)
        if ckpt is not None and ckpt.name >= "step-0000004":
            break
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(out)
    assert killed_at is not None and killed_at.name < "step-0000010"
    run([*module, *args, "--train.output_dir", str(out)])
    full, resumed = losses(tmp_path / "full"), losses(out)
    assert sorted(resumed) == list(range(1, 11))
    np.testing.assert_allclose([resumed[s] for s in full], [full[s] for s in full], rtol=1e-5)
    # no temporary checkpoint folder is left behind, and only keep_last checkpoints remain
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["latest", "step-0000008", "step-0000010"]
    metrics = json.loads((out / "final" / "metrics.json").read_text())
    assert {"vla/l1", "vla/l1_units_mean_baseline", "wm/token_acc", "wm/psnr", "wm/ssim"} <= set(metrics)
    assert (out / "final" / "split.json").is_file() and (out / "tensorboard").is_dir()


@pytest.mark.slow
def test_trained_tiny_model_beats_the_mean_on_held_out_episodes(tmp_path: Path) -> None:
    """A few minutes on the CPU: the decoded action chunks of held-out episodes beat predicting the mean action."""
    ds = circling_dataset(tmp_path / "ds", episodes=20, length=10, seed=1)
    vq = tiny_vqgan(tmp_path / "vq")
    out = tmp_path / "run"
    args = [*base_args((ds, vq), out, 600), "--optim.lr", "3e-3", "--optim.min_lr", "3e-4", "--optim.warmup_steps",
            "20", "--train.micro_batch_size", "8", "--data.val_fraction", "0.2", "--data.world_model_ratio", "0",
            "--train.eval_every", "0", "--train.save_every", "0", "--train.val_image_samples", "0",
            "--model.overrides", '{"hidden_size": 64, "action_head_dropout": 0.0}']  # fmt: skip
    assert trainer.main(args) == 0
    policy = RynnVLAPolicy.from_pretrained(out / "final", dtype=torch.float32, mode="discrete")
    source = LeRobotSource(ds)
    split = EpisodeSplit.load(out / "final" / "split.json")
    actions = source.actions()
    train_rows = np.concatenate([np.arange(*source.episode_range(e)) for e in split.train_episodes])
    mean = actions[train_rows].mean(axis=0)
    model_err, mean_err = [], []
    for e in split.val_episodes:
        _, stop = source.episode_range(e)
        for frame in source.episode_frames(e):
            target = actions[np.minimum(np.arange(frame.index, frame.index + 4), stop - 1)]
            chunk = policy.predict_chunk("circle the origin", frame.state, frame.front, frame.wrist).actions
            model_err.append(np.abs(chunk - target).mean())
            mean_err.append(np.abs(mean - target).mean())
    print(f"held-out L1: model {np.mean(model_err):.4f}, mean baseline {np.mean(mean_err):.4f}")
    assert np.mean(model_err) < 0.5 * np.mean(mean_err)


def test_clear_errors(data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds, _ = data
    assert trainer.main(["--train.output_dir", str(tmp_path / "a")]) == 2
    assert "data.root is empty" in capsys.readouterr().err
    assert trainer.main(["--data.root", str(tmp_path / "nope"), "--train.output_dir", str(tmp_path / "b")]) == 2
    assert "not a LeRobot dataset" in capsys.readouterr().err
    assert trainer.main(["--data.root", str(ds), "--train.output_dir", str(tmp_path / "c")]) == 2
    assert "model.vqgan" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        trainer.main(["--optim.lr", "fast"])
    assert "optim.lr" in capsys.readouterr().err


def test_the_checkpoint_robot_io_says_whether_prompts_hold_the_state(data: tuple[Path, Path], tmp_path: Path) -> None:
    """A run with ``data.use_state false`` on data whose robot_io.json says ``state: true`` (as every recorded
    dataset does) deploys a mapping without the state, which the policy can load; the rest is the dataset's."""
    io = tmp_path / "robot_io.json"
    io.write_text(json.dumps({"joints": [{"name": "a", "relative": False}], "control_period": 0.1, "state": True}))
    args = [*base_args(data, tmp_path / "run", 1), "--model.robot_io", str(io), "--data.use_state", "false"]
    assert trainer.main(args) == 0
    final = tmp_path / "run" / "final"
    written = json.loads((final / "robot_io.json").read_text())
    assert written == {"joints": [{"name": "a", "relative": False}], "control_period": 0.1, "state": False}
    assert RynnVLAPolicy.from_pretrained(final, dtype=torch.float32).processor.state_dim is None


def test_relative_dims_must_match_the_robot_io(data: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    io = tmp_path / "robot_io.json"
    io.write_text(json.dumps({"joints": [{"name": "a", "relative": True}, {"name": "b", "relative": False}]}))
    args = [*base_args(data, tmp_path / "run", 1), "--model.robot_io", str(io)]
    assert trainer.main([*args, "--data.relative_dims", "1"]) == 2
    assert "relative joints [0] but data.relative_dims is [1]" in capsys.readouterr().err
