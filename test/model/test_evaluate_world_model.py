"""``rynnvla-eval-wm`` end to end on a tiny random checkpoint and a small LeRobot dataset written by lerobot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rynnvla_model import evaluate_world_model as ewm
from rynnvla_model.data.lerobot_io import finish_dataset, save_episode
from rynnvla_model.data.lerobot_source import LeRobotSource
from rynnvla_model.image_tokenizer import resize

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*:DeprecationWarning")

FRONT, WRIST = "observation.images.front", "observation.images.wrist"
EPISODE_LENGTHS = (6, 5, 6)


def _frame(ep: int, i: int, h: int, w: int, phase: float) -> np.ndarray:
    """A smooth moving pattern (compresses well, and consecutive frames differ)."""
    y, x = np.mgrid[0:h, 0:w]
    base = 127 + 100 * np.sin((x + 3 * i + 5 * ep) / 6.0 + phase) * np.cos((y - 2 * i) / 7.0)
    return np.stack([base, np.roll(base, i, axis=1), 255 - base], axis=-1).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("wm") / "so100_wm"
    names = [f"j{i}.pos" for i in range(6)]
    features = {
        FRONT: {"dtype": "video", "shape": (48, 64, 3), "names": ["height", "width", "channels"]},
        WRIST: {"dtype": "video", "shape": (40, 40, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (6,), "names": names},
        "action": {"dtype": "float32", "shape": (6,), "names": names},
    }
    ds = LeRobotDataset.create("test/so100_wm", fps=10, features=features, root=root, video_backend="pyav")
    for ep, length in enumerate(EPISODE_LENGTHS):
        for i in range(length):
            ds.add_frame(
                {
                    FRONT: _frame(ep, i, 48, 64, 0.0),
                    WRIST: _frame(ep, i, 40, 40, 1.0),
                    "observation.state": np.r_[np.full(5, 2.0 * i + ep), 40.0].astype(np.float32),
                    "action": np.r_[np.full(5, 2.0 * i + ep + 1.5), 60.0].astype(np.float32),
                    "task": "pick",
                }
            )
        save_episode(ds)
    finish_dataset(ds, root)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rynnvla_ros.inference.tiny_checkpoint import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", image_size=64, time_horizon=4)


class _ClipI3D(torch.nn.Module):
    """A real TorchScript video network with the I3D calling convention, for clips of any length."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 4, kernel_size=(1, 5, 5), stride=(1, 8, 8))

    def forward(
        self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False
    ) -> torch.Tensor:
        if rescale or resize or not return_features or x.shape[3] != 224 or x.shape[4] != 224:
            raise RuntimeError("expected prepared (N, 3, T, 224, 224) input and features")
        h = torch.relu(self.conv(x))
        return torch.cat([h.mean(dim=(2, 3, 4)), h.std(dim=(2, 3, 4))], dim=1)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random AlexNet in torchvision's checkpoint layout and a scripted I3D-like network."""
    import torchvision

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("weights")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), d / "alexnet-owt-7be5be79.pth")
    torch.jit.save(torch.jit.script(_ClipI3D()), str(d / "i3d_torchscript.pt"))
    return d / "alexnet-owt-7be5be79.pth", d / "i3d_torchscript.pt"


# ----------------------------------------------------------------------------------------------- pieces
def test_held_out_episodes_from_arguments_split_files_and_the_default(tmp_path: Path) -> None:
    assert ewm.held_out_episodes(20, [7, 3, 3], None) == ([3, 7], "--episodes")
    assert ewm.held_out_episodes(20, None, None) == ([18, 19], "last 10% of episodes")
    assert ewm.held_out_episodes(3, None, None)[0] == [2]  # at least one
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train_episodes": [0, 2, 3], "val_episodes": [4, 1]}))
    assert ewm.held_out_episodes(5, None, split)[0] == [1, 4]
    assert ewm.held_out_episodes(5, None, None, checkpoint=tmp_path)[0] == [1, 4]  # the checkpoint's own split.json
    with pytest.raises(ValueError, match=r"episodes \[5\] are not in the dataset"):
        ewm.held_out_episodes(5, [5], None)
    with pytest.raises(ValueError, match="not both"):
        ewm.held_out_episodes(5, [1], split)
    with pytest.raises(FileNotFoundError, match="split file not found"):
        ewm.held_out_episodes(5, None, tmp_path / "missing.json")


def test_world_model_action_is_the_first_vla_target_step() -> None:
    actions = np.array([[10.0, 20.0, 1.0], [11.0, 21.0, 0.0]])
    states = np.array([[9.0, 15.0, 0.5], [10.0, 16.0, 0.5]])
    np.testing.assert_allclose(ewm.world_model_action(actions, states, 1, 2, (0, 1)), [1.0, 5.0, 0.0])
    np.testing.assert_allclose(ewm.world_model_action(actions, states, 0, 2, ()), [10.0, 20.0, 1.0])
    assert ewm.step_rows(10, 16, 1, 0) == [10, 11, 12, 13, 14]
    assert ewm.step_rows(10, 16, 2, 2) == [10, 12]


def test_a_world_model_horizon_takes_the_action_due_before_the_predicted_frame() -> None:
    actions = np.array([[10.0, 20.0, 1.0], [11.0, 21.0, 0.0], [12.0, 24.0, 1.0]])
    states = np.array([[9.0, 15.0, 0.5], [10.0, 16.0, 0.5], [11.0, 17.0, 0.5]])
    # H = 2 from row 0: the target of row 1, relative dims minus the state at row 0
    np.testing.assert_allclose(ewm.world_model_action(actions, states, 0, 3, (0, 1), horizon=2), [2.0, 6.0, 0.0])
    assert ewm.step_rows(10, 16, 1, 0, horizon=3) == [10, 11, 12]  # each needs the row 3 ahead in the episode


# ------------------------------------------------------------------------------------------- end to end
def _expected_copy_psnr(dataset: Path, episodes: list[int], steps: int, view_key: str) -> float:
    """Mean PSNR of resized frame t vs t+1, computed here with numpy from the decoded dataset frames."""
    source = LeRobotSource(dataset)
    values = []
    for ep in episodes:
        frames = [resize(getattr(f, "front" if view_key == FRONT else "wrist"), 64) for f in source.episode_frames(ep)]
        for t in range(min(steps, len(frames) - 1)):
            mse = np.mean((frames[t].astype(np.float64) - frames[t + 1]) ** 2) / 255.0**2
            values.append(10 * math.log10(1.0 / mse))
    return float(np.mean(values))


def test_cli_end_to_end_writes_finite_metrics_and_the_copy_baseline(
    dataset: Path, checkpoint: Path, weight_files: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    lpips_file, i3d_file = weight_files
    out, samples = tmp_path / "wm.json", tmp_path / "samples"
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train_episodes": [1], "val_episodes": [0, 2]}))
    argv = [str(checkpoint), str(dataset), "--split", str(split), "--max-steps", "4", "--device", "cpu"]
    argv += ["--lpips-weights", str(lpips_file), "--i3d", str(i3d_file), "--fvd-frames", "2"]
    argv += ["--samples-dir", str(samples), "--samples-per-episode", "1", "--out", str(out), "--no-progress"]
    assert ewm.main(argv) == 0
    table = capsys.readouterr().out
    assert "copy_baseline" in table and "wrist" in table

    result = json.loads(out.read_text())
    assert result["episodes"] == [0, 2] and result["views"] == ["front", "wrist"] and result["image_size"] == [64, 64]
    assert result["action"] == {"relative_dims": [0, 1, 2, 3, 4], "relative_dims_from": "robot_io.json"}
    assert result["counts"] == {"episodes": 2, "steps": 8, "fvd_clips": 4}
    for view in ("front", "wrist"):
        by_ref = result["metrics"][view]
        assert set(by_ref) == {"model", "copy_baseline", "vq_reconstruction"}
        assert set(by_ref["model"]) == {"psnr", "ssim", "lpips", "fvd"}
        for ref in by_ref.values():
            for name, value in ref.items():
                assert value is not None and math.isfinite(value), (view, name)
            assert 0 < ref["psnr"] < 100 and -1 <= ref["ssim"] <= 1 and ref["lpips"] >= 0
        key = FRONT if view == "front" else WRIST
        expected = _expected_copy_psnr(dataset, [0, 2], 4, key)
        assert by_ref["copy_baseline"]["psnr"] == pytest.approx(expected, rel=1e-6)
    assert [e["episode"] for e in result["per_episode"]] == [0, 2]
    assert all(
        e["steps"] == 4 and set(e["front"]) == {"model", "copy_baseline", "vq_reconstruction"}
        for e in result["per_episode"]
    )
    assert result["timing"]["predict_ms_per_step"] > 0 and result["notes"] == []
    pngs = sorted(p.name for p in samples.glob("*.png"))
    assert pngs == ["ep0000_t00000.png", "ep0002_t00000.png"]
    from PIL import Image

    assert Image.open(samples / pngs[0]).size == (3 * 64, 2 * 64)  # frame t | predicted | real, one row per view


def test_batched_generation_matches_the_policy_call(dataset: Path, checkpoint: Path) -> None:
    from rynnvla_model.policy import RynnVLAPolicy

    policy = RynnVLAPolicy.from_pretrained(checkpoint)
    common = dict(
        checkpoint=checkpoint,
        dataset=dataset,
        episodes=[1],
        max_steps=3,
        views=("front",),
        reconstruction=False,
        progress=False,
    )
    single = ewm.evaluate_world_model(ewm.EvalConfig(**common, batch_size=1), policy)
    batched = ewm.evaluate_world_model(ewm.EvalConfig(**common, batch_size=3), policy)
    assert single["counts"]["steps"] == batched["counts"]["steps"] == 3
    assert single["metrics"]["front"]["model"] == pytest.approx(batched["metrics"]["front"]["model"], abs=1e-9)
    assert single["metrics"]["front"]["model"]["lpips"] is None and "lpips: not computed" in single["notes"][0]


def test_missing_weight_files_fail_fast_with_the_path(dataset: Path, checkpoint: Path, tmp_path: Path, capsys) -> None:
    base = [str(checkpoint), str(dataset), "--out", str(tmp_path / "x.json"), "--no-progress"]
    assert ewm.main([*base, "--lpips-weights", str(tmp_path / "alex.pth")]) == 2
    err = capsys.readouterr().err
    assert f"looked for {tmp_path / 'alex.pth'}" in err and "alexnet-owt-7be5be79.pth" in err
    assert ewm.main([*base, "--i3d", str(tmp_path / "i3d.pt")]) == 2
    assert f"I3D TorchScript file not found: looked for {tmp_path / 'i3d.pt'}" in capsys.readouterr().err
    assert ewm.main([str(tmp_path / "no_ckpt"), str(dataset), "--out", str(tmp_path / "x.json")]) == 2
    assert "checkpoint directory not found" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
