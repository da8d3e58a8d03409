"""The continuous Action Transformer head: official names/shapes, context handling, padding behaviour."""

from __future__ import annotations

import pytest
import torch

from rynnvla_model.action_head import ActionHead

H, A, K = 32, 3, 2


def head(mask_padding: bool = False, seed: int = 0) -> ActionHead:
    torch.manual_seed(seed)
    return ActionHead(H, A, K, nhead=4, mask_padding=mask_padding).eval()


def test_official_parameter_names_and_shapes() -> None:
    with torch.device("meta"):
        h = ActionHead(4096, action_dim=7, time_horizon=5)
    shapes = {name: tuple(p.shape) for name, p in h.named_parameters()}
    expected = {
        "action_token_embeddings.weight": (1, 5 * 7 * 4096),
        "hidden_projection.weight": (1024, 4096),
        "hidden_projection.bias": (1024,),
        "transformer_encoder.norm.weight": (1024,),
        "output_projection.model.layer_norm1.weight": (7 * 1024,),
        "output_projection.model.fc1.weight": (1024, 7 * 1024),
        "output_projection.model.layer_norm2.weight": (1024,),
        "output_projection.model.fc2.weight": (7, 1024),
        "output_projection.model.fc2.bias": (7,),
    }
    for layer in (0, 1):
        p = f"transformer_encoder.layers.{layer}."
        expected |= {
            p + "self_attn.in_proj_weight": (3072, 1024),
            p + "self_attn.in_proj_bias": (3072,),
            p + "self_attn.out_proj.weight": (1024, 1024),
            p + "linear1.weight": (4096, 1024),
            p + "linear2.weight": (1024, 4096),
            p + "norm1.weight": (1024,),
            p + "norm2.bias": (1024,),
        }
    for block in (0, 1):
        p = f"output_projection.model.mlp_resnet_blocks.{block}.ffn."
        expected |= {p + "0.weight": (1024,), p + "1.weight": (1024, 1024), p + "1.bias": (1024,)}
    for name, shape in expected.items():
        assert shapes.get(name) == shape, name
    assert not any(name.startswith("transformer_encoder.layers.2") or "readout" in name for name in shapes)
    layer = h.transformer_encoder.layers[0]
    assert layer.self_attn.num_heads == 4 and not layer.norm_first and layer.self_attn.batch_first
    assert layer.dropout.p == pytest.approx(0.1) and layer.activation_relu_or_gelu == 1


def test_output_depends_only_on_the_context_tokens() -> None:
    h = head()
    x = torch.randn(2, 9, H)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, :6] = True
    mask[1, 2:8] = True  # same length, anywhere in the row
    out = h(x, mask)
    assert out.shape == (2, K, A)
    y = x.clone()
    y[0, 6:] = 100.0
    y[1, :2] = -50.0
    y[1, 8] = 7.0
    assert torch.equal(h(y, mask), out)
    z = x.clone()
    z[1, 4] += 1.0
    assert not torch.allclose(h(z, mask)[1], out[1]), "context tokens do matter"


def test_queries_have_no_positional_encoding() -> None:
    h = head()
    x = torch.randn(1, 7, H)
    mask = torch.ones(1, 7, dtype=torch.bool)
    perm = torch.randperm(7)
    torch.testing.assert_close(h(x[:, perm], mask), h(x, mask), rtol=1e-5, atol=1e-6)


def test_spatial_readout_depends_on_where_the_last_tokens_sit() -> None:
    torch.manual_seed(0)
    h = ActionHead(H, A, K, nhead=4, mask_padding=True, readout_tokens=4, readout_dim=2).eval()
    assert {n for n, _ in h.named_parameters() if "readout" in n} == {
        "readout_projection.weight",
        "readout_projection.bias",
        "readout.weight",
        "readout.bias",
    }
    x = torch.randn(1, 7, H)
    mask = torch.ones(1, 7, dtype=torch.bool)
    swapped = x[:, [0, 1, 2, 3, 4, 6, 5]]  # two of the last four trade places: the encoder alone would not notice
    assert not torch.allclose(h(swapped, mask), h(x, mask), atol=1e-4)
    short = torch.randn(1, 2, H)  # fewer context tokens than the readout reads: zeros stand in for the rest
    padded = torch.zeros(2, 7, H)
    padded[0], padded[1, :2] = x[0], short[0]
    lengths = torch.zeros(2, 7, dtype=torch.bool)
    lengths[0], lengths[1, :2] = True, True
    batched = h(padded, lengths)
    torch.testing.assert_close(batched[0], h(x, mask)[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched[1], h(short, torch.ones(1, 2, dtype=torch.bool))[0], rtol=1e-5, atol=1e-5)


def _manual(h: ActionHead, context: torch.Tensor, n_zero: int, mask_zero: bool) -> torch.Tensor:
    """The release's layout written out: [context, K*A queries, n_zero zero rows] through the head's layers."""
    queries = h.action_token_embeddings.weight.view(K * A, H)
    seq = torch.cat([context, queries, torch.zeros(n_zero, H)])[None]
    pad = torch.zeros(1, seq.shape[1], dtype=torch.bool)
    if mask_zero and n_zero:
        pad[0, -n_zero:] = True
    enc = h.transformer_encoder(h.hidden_projection(seq), src_key_padding_mask=pad if mask_zero else None)
    q = enc[:, context.shape[0] : context.shape[0] + K * A]
    return h.output_projection(q)[0]


@pytest.mark.parametrize("mask_padding", [False, True])
def test_batch_padding_behaviour(mask_padding: bool) -> None:
    h = head(mask_padding)
    long_ctx, short_ctx = torch.randn(8, H), torch.randn(5, H)
    x = torch.zeros(2, 8, H)
    x[0] = long_ctx
    x[1, :5] = short_ctx
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0] = True
    mask[1, :5] = True
    out = h(x, mask)
    torch.testing.assert_close(out[1], _manual(h, short_ctx, 3, mask_padding), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[0], _manual(h, long_ctx, 0, mask_padding), rtol=1e-5, atol=1e-6)
    alone = h(short_ctx[None], torch.ones(1, 5, dtype=torch.bool))[0]
    if mask_padding:
        torch.testing.assert_close(out[1], alone, rtol=1e-5, atol=1e-6)
    else:  # the release attends the zero rows, so batching changes the shorter sample's output
        assert not torch.allclose(out[1], alone, atol=1e-6)


def test_dropout_only_in_training() -> None:
    h = head()
    x, mask = torch.randn(1, 6, H), torch.ones(1, 6, dtype=torch.bool)
    assert torch.equal(h(x, mask), h(x, mask))
    h.train()
    torch.manual_seed(1)
    first = h(x, mask)
    assert not torch.equal(first, h(x, mask))


def test_bad_shapes() -> None:
    h = head()
    with pytest.raises(ValueError, match="hidden_states"):
        h(torch.randn(1, 4, H + 1), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="context_mask"):
        h(torch.randn(1, 4, H), torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        ActionHead(30, A, K, nhead=4)
