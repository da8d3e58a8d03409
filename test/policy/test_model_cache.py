"""Loading models: one copy per process and spec, clear errors for anything missing."""

import gc

import pytest
import torch

from rynnvla_ros.inference.model_cache import ModelLoadError, ModelSpec, cached_policies, load_policy
from rynnvla_ros.inference.tiny_checkpoint import make_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), image_size=32, time_horizon=3)


def test_one_copy_per_checkpoint_device_and_dtype(checkpoint):
    gc.collect()
    loaded = cached_policies()  # models still held by other tests' nodes
    a = load_policy(ModelSpec(checkpoint=str(checkpoint), device="cpu"))
    auto = "cpu" if torch.cuda.is_available() else "auto"  # auto resolves to cpu without CUDA
    b = load_policy(ModelSpec(checkpoint=str(checkpoint) + "/", device=auto))
    assert a is b and cached_policies() == loaded + 1
    c = load_policy(ModelSpec(checkpoint=str(checkpoint), device="cpu", dtype="float16"))
    assert c is not a and cached_policies() == loaded + 2
    assert next(c.model.parameters()).dtype != next(a.model.parameters()).dtype
    del a, b, c
    gc.collect()
    assert cached_policies() == loaded  # nothing keeps a model alive once no node holds it


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (ModelSpec(), "no model given: set the parameter checkpoint"),
        (ModelSpec(checkpoint="/nonexistent/ckpt"), "checkpoint directory not found: /nonexistent/ckpt"),
        (ModelSpec(official_checkpoint="/tmp"), "parameter tokenizer_dir is empty"),
        (ModelSpec(official_checkpoint="/tmp", tokenizer_dir="/tmp"), "needs norm_stats"),
        (ModelSpec(official_checkpoint="/tmp", tokenizer_dir="/tmp", norm_stats="/no/stats.json"), "not found"),
        (ModelSpec(checkpoint="/tmp", official_checkpoint="/tmp"), "not both"),
        (ModelSpec(checkpoint="/tmp", device="tpu"), "device must be"),
        (ModelSpec(checkpoint="/tmp", dtype="int8"), "dtype must be"),
    ],
)
def test_missing_inputs_are_named(spec, match):
    with pytest.raises(ModelLoadError, match=match):
        load_policy(spec)


def test_an_incomplete_checkpoint_names_the_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match=f"cannot load checkpoint {tmp_path}: missing config.json"):
        load_policy(ModelSpec(checkpoint=str(tmp_path), device="cpu"))
