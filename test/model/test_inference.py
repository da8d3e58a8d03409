"""Inference: continuous / sequential / parallel discrete chunks, world-model frames, padding, and the policy."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from rynnvla_model.action_tokenizer import libero_norm_stats
from rynnvla_model.bench import image_block_ids, random_codes, synthetic_vla_prompt
from rynnvla_model.checkpoint import save_pretrained
from rynnvla_model.config import RynnVLAConfig
from rynnvla_model.inference import predict_chunk, predict_next_frames, prepare_prompts
from rynnvla_model.modeling import RynnVLAForActionWorldModel
from rynnvla_model.policy import RynnVLAPolicy
from rynnvla_model.processor import processor_for_compact
from rynnvla_model.vocab import NUM_BINS
from rynnvla_model.vqgan import VQGAN, VQGANConfig

K, A = 4, 3


@pytest.fixture(
    scope="module",
    params=[{}, {"absolute_positions": 256}, {"image_reference_views": 2}],
    ids=["rotary", "absolute_positions", "image_reference_views"],
)
def model(request: pytest.FixtureRequest) -> RynnVLAForActionWorldModel:
    torch.manual_seed(0)
    cfg = RynnVLAConfig.tiny(action_dim=A, time_horizon=K, action_head_mask_padding=True, **request.param)
    return RynnVLAForActionWorldModel(cfg).eval()


def prompts(model: RynnVLAForActionWorldModel, n_texts: tuple[int, ...] = (5, 11, 8)) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [synthetic_vla_prompt(model.layout, rng, n_text=n, state_dim=2, n_images=2, latent=2) for n in n_texts]


def naive_discrete(model: RynnVLAForActionWorldModel, prompt: np.ndarray) -> torch.Tensor:
    """Greedy decoding without a cache: re-run the full sequence (chunk mask built by the model) every step."""
    lay = model.layout
    values = torch.arange(lay.action_value_first, lay.action_value_first + NUM_BINS)
    seq = list(prompt)
    out = torch.empty((K, A), dtype=torch.long)
    for k in range(K):
        seq.append(lay.action_start)
        for j in range(A):
            with torch.no_grad():
                logits = model(torch.tensor([seq])).logits[0, -1]
            out[k, j] = values[logits[values].argmax()]
            seq.append(int(out[k, j]))
        seq.append(lay.action_end)
    return out


def test_parallel_discrete_equals_sequential(model: RynnVLAForActionWorldModel) -> None:
    batch = prompts(model)
    seq = predict_chunk(model, batch, mode="discrete", parallel=False)
    par = predict_chunk(model, batch, mode="discrete", parallel=True)
    assert seq.token_ids.shape == (3, K, A)
    assert torch.equal(seq.token_ids, par.token_ids)
    assert torch.equal(seq.actions, par.actions)
    assert par.forward_passes == 1 + A and seq.forward_passes == K * A
    for b, p in enumerate(batch):
        assert torch.equal(naive_discrete(model, p), seq.token_ids[b]), "KV cache + step masks = full recompute"
    lay = model.layout
    ids = seq.token_ids
    assert ((ids >= lay.action_value_first) & (ids < lay.action_value_first + NUM_BINS)).all()


def test_left_right_and_list_padding_agree(model: RynnVLAForActionWorldModel) -> None:
    batch = prompts(model)
    width = max(len(p) for p in batch)
    right = torch.full((3, width), model.layout.pad)
    left = torch.full((3, width), model.layout.pad)
    rmask = torch.zeros((3, width), dtype=torch.long)
    lmask = torch.zeros((3, width), dtype=torch.long)
    for b, p in enumerate(batch):
        right[b, : len(p)], rmask[b, : len(p)] = torch.tensor(p), 1
        left[b, width - len(p) :], lmask[b, width - len(p) :] = torch.tensor(p), 1
    for mode in ("continuous", "discrete"):
        ref = [predict_chunk(model, [p], mode=mode).actions[0] for p in batch]
        for got in (
            predict_chunk(model, batch, mode=mode).actions,
            predict_chunk(model, right, mode=mode, attention_mask=rmask).actions,
            predict_chunk(model, left, mode=mode, attention_mask=lmask).actions,
        ):
            for b in range(3):
                torch.testing.assert_close(got[b], ref[b], rtol=1e-4, atol=1e-5)


def test_continuous_matches_the_release_procedure(model: RynnVLAForActionWorldModel) -> None:
    """The release appends the action start, runs the model and feeds the states before it to the head."""
    p = prompts(model)[0]
    ids = torch.tensor([[*p, model.layout.action_start]])
    with torch.no_grad():
        hidden = model(ids).hidden_states
        want = model.predict_actions(hidden, model.context_mask(ids))[0]
    got = predict_chunk(model, [p], mode="continuous")
    assert got.actions.shape == (1, K, A) and got.token_ids is None and got.forward_passes == 1
    torch.testing.assert_close(got.actions[0], want, rtol=1e-5, atol=1e-6)


def test_world_model_frames_follow_the_grammar_and_match_full_recompute(model: RynnVLAForActionWorldModel) -> None:
    lay = model.layout
    rng = np.random.default_rng(2)
    base = [lay.bos, lay.text_byte_first + 3]
    for _ in range(2):
        base += image_block_ids(lay, random_codes(lay, 2, rng))
    action = [lay.action_start, *(lay.action_value_first + i for i in (1, 2, 3)), lay.action_end]
    wm_prompts = [np.asarray([*base, *action, lay.turn_sep])]
    wm_prompts.append(np.concatenate([[lay.bos, lay.text_byte_first + 9], wm_prompts[0][1:]]))
    h, w = 2, 4
    out = predict_next_frames(model, wm_prompts, (h, w), n_images=2)
    assert out.forward_passes == 2 * h * w
    block = 3 + h * (w + 1) + 1
    assert out.token_ids.shape == (2, 2 * block)
    codes_to_ids = torch.as_tensor(lay.image_ids())
    for b, p in enumerate(wm_prompts):
        toks = out.token_ids[b].tolist()
        for i in range(2):
            blk = toks[i * block : (i + 1) * block]
            assert blk[:3] == [lay.image_start, lay.grid_token(h), lay.grid_token(w)] and blk[-1] == lay.image_end
            rows = np.asarray(blk[3:-1]).reshape(h, w + 1)
            assert (rows[:, -1] == lay.row_end).all()
            assert np.array_equal(codes_to_ids[out.codes[b][i]].numpy(), rows[:, :-1])
        # full recompute: greedy over image codes at every code position, forced tokens elsewhere
        seq = list(p)
        for t, tok in enumerate(toks):
            if t % block >= 3 and (t % block - 3) % (w + 1) < w and t % block < block - 1:
                with torch.no_grad():
                    logits = model(torch.tensor([seq]), chunk_mask=False).logits[0, -1]
                assert int(codes_to_ids[logits[codes_to_ids].argmax()]) == tok
            seq.append(tok)
        alone = predict_next_frames(model, [p], (h, w), n_images=2)
        assert torch.equal(alone.token_ids[0], out.token_ids[b]), "batching does not change a row"


def test_bad_requests(model: RynnVLAForActionWorldModel) -> None:
    p = prompts(model)[0]
    with pytest.raises(ValueError, match="mode"):
        predict_chunk(model, [p], mode="diffusion")
    with pytest.raises(ValueError, match="no tokens"):
        predict_chunk(model, [p, np.zeros(0, dtype=np.int64)])
    with pytest.raises(ValueError, match="outside"):
        predict_chunk(model, [np.array([0, model.config.vocab_size])])
    with pytest.raises(ValueError, match="integer"):
        prepare_prompts([np.array([0.5, 1.0])], None, 0, 10, torch.device("cpu"))
    with pytest.raises(ValueError, match="only used with"):
        predict_chunk(model, [p], attention_mask=np.ones((1, len(p))))
    with pytest.raises(ValueError, match="latent grid"):
        predict_next_frames(model, [p], (0, 2))


# ---------------------------------------------------------------------------------------------------- policy
IMG = 32


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(1)
    vqgan = VQGAN(VQGANConfig.tiny(n_embed=16, downsample_factor=16)).eval()
    processor = processor_for_compact(vqgan, libero_norm_stats(), image_size=IMG)
    cfg = RynnVLAConfig.tiny(action_dim=7, time_horizon=K, codebook_size=16)
    directory = tmp_path_factory.mktemp("policy")
    save_pretrained(RynnVLAForActionWorldModel(cfg), processor, directory)
    return str(directory)


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (IMG, IMG, 3), dtype=np.uint8)


def test_policy_chunk_in_physical_units(policy_dir: str) -> None:
    policy = RynnVLAPolicy.from_pretrained(policy_dir)
    stats = libero_norm_stats()["action"]
    state = np.linspace(0.0, 0.5, 8)
    for mode in ("continuous", "discrete"):
        out = policy.predict_chunk("put the bowl on the plate", state, [frame(0), frame(1)], [frame(2), frame(3)], mode)
        assert out.actions.shape == (K, 7) and out.normalized.shape == (K, 7)
        want = (out.normalized + 1.0) / 2.0 * (stats.max - stats.min + 1e-8) + stats.min
        np.testing.assert_allclose(out.actions, want, rtol=1e-12, atol=1e-12)
        assert set(out.timings) == {"tokenize_ms", "model_ms", "total_ms"} and out.timings["total_ms"] > 0
        assert out.prompt_tokens > 4 * 8
    discrete = policy.predict_chunk("go", state, [frame(0)], [frame(2)], "discrete")
    assert np.all((discrete.actions >= stats.min - 1e-6) & (discrete.actions <= stats.max + 1e-6))


def test_policy_rejects_bad_inputs(policy_dir: str) -> None:
    policy = RynnVLAPolicy.from_pretrained(policy_dir)
    with pytest.raises(ValueError, match="state contains NaN"):
        policy.predict_chunk("go", np.array([0.1, np.nan, 0, 0, 0, 0, 0, 0]), [frame(0)], [frame(1)])
    with pytest.raises(ValueError, match=r"state must have shape \(8,\)"):
        policy.predict_chunk("go", np.zeros(6), [frame(0)], [frame(1)])
    with pytest.raises(ValueError, match="needs a state"):
        policy.predict_chunk("go", None, [frame(0)], [frame(1)])
    with pytest.raises(ValueError, match="action contains NaN"):
        policy.predict_next_frames(frame(0), frame(1), np.full(7, np.inf))
    with pytest.raises(ValueError, match="mode"):
        policy.predict_chunk("go", np.zeros(8), [frame(0)], [frame(1)], mode="fast")


def test_policy_next_frames_and_threads(policy_dir: str) -> None:
    policy = RynnVLAPolicy.from_pretrained(policy_dir, mode="discrete")
    out = policy.predict_next_frames(frame(0), frame(1), np.zeros(7))
    assert len(out.images) == 2 and all(i.shape == (IMG, IMG, 3) and i.dtype == np.uint8 for i in out.images)
    assert [c.shape for c in out.codes] == [(2, 2), (2, 2)]
    np.testing.assert_array_equal(out.images[0], policy.processor.image_tokenizer.decode_codes(out.codes[0]))
    front_only = policy.predict_next_frames(frame(0), None, np.zeros(7))
    assert len(front_only.images) == 1
    reference = policy.predict_chunk("go", np.zeros(8), [frame(0)], [frame(1)]).actions
    results: list[np.ndarray] = []

    def worker() -> None:
        results.append(policy.predict_chunk("go", np.zeros(8), [frame(0)], [frame(1)]).actions)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(np.array_equal(r, reference) for r in results)
