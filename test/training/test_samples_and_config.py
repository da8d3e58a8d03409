"""Sample cutting, episode split, batch order and the run configuration (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rynnvla_model.data.samples import (
    KIND_VLA,
    KIND_WORLD_MODEL,
    EpisodeSplit,
    SampleSpec,
    chunk_targets,
    history_rows,
    sample_refs,
    split_episodes,
)
from rynnvla_model.training.config import build_parser, parse_run_config
from rynnvla_model.training.token_data import BatchPlan


def test_chunk_targets_relative_dims_and_episode_end() -> None:
    states = np.array([[10.0, 1.0], [11.0, 2.0], [12.0, 3.0]])
    actions = np.array([[11.0, 50.0], [12.0, 60.0], [13.0, 70.0]])
    spec = SampleSpec(time_horizon=4, relative_dims=(0,))
    # rows past the episode end (stop=3) repeat the last action; dim 0 relative to the state at t, dim 1 absolute
    np.testing.assert_array_equal(
        chunk_targets(actions, states, 1, 3, spec), [[1.0, 60.0], [2.0, 70.0], [2.0, 70.0], [2.0, 70.0]]
    )
    np.testing.assert_array_equal(chunk_targets(actions, states, 0, 3, SampleSpec(time_horizon=1))[0], [11.0, 50.0])


def test_history_leaves_out_frames_before_the_episode() -> None:
    spec = SampleSpec(history=3, history_stride=2)
    assert history_rows(10, 0, spec) == [6, 8, 10]
    assert history_rows(11, 10, spec) == [11]  # the episode starts at 10: t-2, t-4 do not exist
    assert history_rows(12, 10, spec) == [10, 12]


def test_sample_refs_mix_world_model_samples_at_the_ratio() -> None:
    ranges = [(0, 5), (5, 8)]
    vla_only = sample_refs(ranges, SampleSpec(world_model_ratio=0))
    assert [r.row for r in vla_only] == list(range(8)) and {r.kind for r in vla_only} == {KIND_VLA}
    half = sample_refs(ranges, SampleSpec(world_model_ratio=0.5), seed=3)
    wm = [r.row for r in half if r.kind == KIND_WORLD_MODEL]
    assert len(wm) == 4 and len(set(wm)) == 4 and set(wm) <= {0, 1, 2, 3, 5, 6}  # rows with a next frame
    double = sample_refs(ranges, SampleSpec(world_model_ratio=2.0))
    assert sum(r.kind == KIND_WORLD_MODEL for r in double) == 16
    assert sample_refs(ranges, SampleSpec(), seed=1) == sample_refs(ranges, SampleSpec(), seed=1)


def test_split_is_seeded_disjoint_and_saved(tmp_path: Path) -> None:
    split = split_episodes(20, 0.1, seed=4)
    assert len(split.val_episodes) == 2 and not set(split.val_episodes) & set(split.train_episodes)
    assert sorted(split.train_episodes + split.val_episodes) == list(range(20))
    assert split == split_episodes(20, 0.1, seed=4) != split_episodes(20, 0.1, seed=5)
    assert EpisodeSplit.load(split.save(tmp_path / "split.json")) == split
    assert split_episodes(3, 0.1).val_episodes and split_episodes(1, 0.1).val_episodes == []


def flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


def test_batch_plan_gives_the_same_micro_batches_whatever_the_world_size() -> None:
    one = BatchPlan(num_samples=50, micro_batch_size=3, grad_accum=4, world_size=1, seed=0)
    two = BatchPlan(num_samples=50, micro_batch_size=3, grad_accum=2, world_size=2, seed=0)
    assert one.global_batch == two.global_batch == 12 and one.steps_per_epoch == 4
    single = list(one.micro_batches(0, 0, 9))
    r0, r1 = list(two.micro_batches(0, 0, 9)), list(two.micro_batches(1, 0, 9))
    # step s of the one-process run holds the micro-batches of both ranks of the two-process run
    for s in range(9):
        both = r0[2 * s : 2 * s + 2] + r1[2 * s : 2 * s + 2]
        assert sorted(flat(single[4 * s : 4 * s + 4])) == sorted(flat(both))
    # resuming at step 5 continues the same order; each epoch visits distinct samples
    assert list(one.micro_batches(0, 5, 9)) == single[20:]
    assert len(set(flat(single[:16]))) == 48
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        BatchPlan(num_samples=5, micro_batch_size=3, grad_accum=1, world_size=2, seed=0)


def test_config_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  root: /data/a\n  relative_dims: [0, 1]\noptim:\n  lr: 0.01\n")
    cfg = parse_run_config(["--config", str(path), "--optim.lr", "0.002", "--data.use_wrist", "false"])
    assert (cfg.data.root, cfg.data.relative_dims, cfg.optim.lr, cfg.data.use_wrist) == (
        "/data/a",
        [0, 1],
        0.002,
        False,
    )
    cfg = parse_run_config(["--data.relative_dims", "0", "1", "2", "--model.overrides", '{"hidden_size": 48}'])
    assert cfg.data.relative_dims == [0, 1, 2] and cfg.model.overrides == {"hidden_size": 48}
    path.write_text("optim:\n  learning_rate: 1\n")
    with pytest.raises(SystemExit):
        parse_run_config(["--config", str(path)])


def test_help_lists_every_field() -> None:
    text = build_parser().format_help()
    for flag in ("--data.root", "--data.relative_dims", "--model.init", "--optim.warmup_steps", "--train.strategy",
                 "--train.resume", "--train.save_every"):  # fmt: skip
        assert flag in text


def test_world_model_samples_need_the_frame_h_rows_ahead() -> None:
    spec = SampleSpec(time_horizon=4, world_model_ratio=1.0, world_model_horizon=3)
    refs = sample_refs([(0, 10), (10, 15)], spec, seed=0)
    wm_rows = {r.row for r in refs if r.kind == KIND_WORLD_MODEL}
    assert wm_rows == set(range(0, 7)) | set(range(10, 12))  # every row with t + 3 inside its episode
    with pytest.raises(ValueError, match="world_model_horizon"):
        SampleSpec(time_horizon=4, world_model_horizon=5)
