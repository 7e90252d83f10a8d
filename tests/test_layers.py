"""Unit tests of the building blocks: one harness over every ColTran and iColoriT
layer (get_config round trip, serialisation, fixed sub-layer names, one
training step), then numerical tests.

Every numerical test compares a layer against an independent float64 numpy
implementation, with all weights set to random values (so that a
swapped split order, a wrong relative-bias index or a missing scale shows up).
Sizes are tiny; canvases are deliberately non-square (H=4, W=6) so that row
and column lengths cannot be confused.
"""

import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy.testing import assert_allclose, assert_array_equal

from coltran_tf import layers as L
from coltran_tf.icolorit import attention as icolorit_attention
from coltran_tf.icolorit import block as icolorit_block
from coltran_tf.icolorit import head as icolorit_head
from coltran_tf.icolorit import patch_embedding as icolorit_patch_embedding
from coltran_tf.layers.activations import get_activation
from coltran_tf.layers.conditioning import (
    BASELINE_CONDITIONING,
    CONDITIONING_DEFAULTS,
    resolve_conditioning,
)
from coltran_tf.utils import image_ops

B, H, W, D, HEADS, C = 2, 4, 6, 8, 2, 5  # batch, canvas, hidden, heads, context channels
FF = 16

NP_ACT = {
    "identity": lambda x: x,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x).astype(np.float64)


def _children(layer):
    """Names of the direct sub-layers, in creation order."""
    return [child.name for child in layer._flatten_layers(include_self=False, recursive=False)]


def _np_layer_norm(x, eps=1e-3):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def _np_softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------
# get_config round trips and fixed sub-layer names, for every public layer
# ---------------------------------------------------------------------------

COND_LN_KWARGS = {"spatial_average": "mean", "sequence": "cs", "out_act": "sigmoid"}
SHIFT_CONDITIONING = {"cond_mlp": "shift", "cond_att_scale": False, "cond_ln_seq": "cs"}


def _x(rng, h=H, w=W, d=D):
    return _rand(rng, B, h, w, d)


# name -> (factory, build-call(layer, rng), expected direct children,
#          expected {child: grandchildren} for some children)
LAYER_CASES = {
    "AxialAttention": (
        lambda: L.AxialAttention(D, HEADS, "row", W),
        lambda layer, r: layer(_x(r)),
        ["q", "k", "v", "output"], {},
    ),
    "AxialAttention-cond": (
        lambda: L.AxialAttention(D, HEADS, "column", H, mask="future", cond_q=True,
                                 cond_k=True, cond_v=True, cond_scale=False,
                                 cond_act="tanh"),
        lambda layer, r: layer(_x(r), context=_x(r, d=C)),
        ["q", "k", "v", "output", "cond_q", "cond_k", "cond_v"], {},
    ),
    "AxialAttention-cond-k-only": (
        lambda: L.AxialAttention(D, HEADS, "row", W, cond_k=True),
        lambda layer, r: layer(_x(r), context=_x(r, d=C)),
        ["q", "k", "v", "output", "cond_k"], {},
    ),
    "AxialEncoderLayer": (
        lambda: L.AxialEncoderLayer(D, FF, HEADS, H, W, dropout=0.1),
        lambda layer, r: layer(_x(r)),
        ["row_attention", "row_attention_residual", "row_mlp", "row_mlp_residual",
         "column_attention", "column_attention_residual", "column_mlp",
         "column_mlp_residual"],
        {"row_attention": ["q", "k", "v", "output"], "row_mlp": ["expand", "project"],
         "row_attention_residual": ["dropout", "norm"]},
    ),
    "AxialEncoder": (
        lambda: L.AxialEncoder(D, FF, HEADS, 1, H, W),
        lambda layer, r: layer(_x(r)),
        ["position_embedding", "layer_0"],
        {"layer_0": ["row_attention", "row_attention_residual", "row_mlp",
                     "row_mlp_residual", "column_attention", "column_attention_residual",
                     "column_mlp", "column_mlp_residual"]},
    ),
    "ConditionalLayerNorm": (
        lambda: L.ConditionalLayerNorm(D, H, W),
        lambda layer, r: layer(_x(r), context=_x(r, d=C)),
        ["normalize", "dense"], {},
    ),
    "ConditionalLayerNorm-options": (
        lambda: L.ConditionalLayerNorm(D, H, W, spatial_average="mean", sequence="cs",
                                       out_init="zeros", out_act="tanh", epsilon=1e-5),
        lambda layer, r: layer(_x(r), context=_x(r, d=C)),
        ["normalize", "dense"], {},
    ),
    "DecoderAttentionBlock": (
        lambda: L.DecoderAttentionBlock(D, HEADS, "column", "future", H, W),
        lambda layer, r: layer(_x(r), context=_x(r), norm_context=_x(r)),
        ["attention", "residual"],
        {"attention": ["q", "k", "v", "output", "cond_q", "cond_k", "cond_v"],
         "residual": ["dropout", "norm"]},
    ),
    "DecoderAttentionBlock-baseline": (
        lambda: L.DecoderAttentionBlock(D, HEADS, "row", None, H, W,
                                        conditioning=BASELINE_CONDITIONING),
        lambda layer, r: layer(_x(r)),
        ["attention", "residual"],
        {"attention": ["q", "k", "v", "output"], "residual": ["dropout", "norm"]},
    ),
    "DecoderMLPBlock": (
        lambda: L.DecoderMLPBlock(D, FF, H, W, dropout=0.1),
        lambda layer, r: layer(_x(r), context=_x(r), norm_context=_x(r)),
        ["mlp", "residual"], {"mlp": ["mlp", "cond"], "residual": ["dropout", "norm"]},
    ),
    "DecoderMLPBlock-shift": (
        lambda: L.DecoderMLPBlock(D, FF, H, W, conditioning=SHIFT_CONDITIONING),
        lambda layer, r: layer(_x(r), context=_x(r), norm_context=_x(r)),
        ["mlp", "residual"], {"mlp": ["mlp", "cond"]},
    ),
    "DecoderMLPBlock-baseline": (
        lambda: L.DecoderMLPBlock(D, FF, H, W, conditioning=BASELINE_CONDITIONING),
        lambda layer, r: layer(_x(r)),
        ["mlp", "residual"], {"mlp": ["expand", "project"]},
    ),
    "ConditionalFeedForward": (
        lambda: L.ConditionalFeedForward(D, FF, "affine", "sigmoid"),
        lambda layer, r: layer(_x(r), _x(r, d=C)),
        ["mlp", "cond"], {"mlp": ["expand", "project"]},
    ),
    "ConditionalFeedForward-shift": (
        lambda: L.ConditionalFeedForward(D, FF, "shift"),
        lambda layer, r: layer(_x(r), _x(r, d=C)),
        ["mlp", "cond"], {},
    ),
    "FeedForward": (
        lambda: L.FeedForward(D, FF),
        lambda layer, r: layer(_x(r)),
        ["expand", "project"], {},
    ),
    "InnerDecoder": (
        lambda: L.InnerDecoder(D, FF, HEADS, 1, H, W),
        lambda layer, r: layer(_x(r), _x(r), _x(r)),
        ["position_embedding", "row_attention_0", "row_mlp_0"],
        {"row_attention_0": ["attention", "residual"], "row_mlp_0": ["mlp", "residual"]},
    ),
    "InnerDecoder-variant": (
        lambda: L.InnerDecoder(D, FF, HEADS, 1, H, W, dropout=0.1, skip=False,
                               conditioning=SHIFT_CONDITIONING),
        lambda layer, r: layer(_x(r), _x(r), _x(r)),
        ["position_embedding", "row_attention_0", "row_mlp_0"], {},
    ),
    "LayerNorm": (
        lambda: L.LayerNorm(epsilon=1e-5),
        lambda layer, r: layer(_x(r)),
        [], {},
    ),
    "OuterDecoder": (
        lambda: L.OuterDecoder(D, FF, HEADS, 1, H, W),
        lambda layer, r: layer(_x(r), _x(r)),
        ["position_embedding", "row_attention_0", "row_mlp_0", "column_attention_0",
         "column_mlp_0"], {},
    ),
    "OuterDecoder-baseline": (
        lambda: L.OuterDecoder(D, FF, HEADS, 1, H, W, conditioning=BASELINE_CONDITIONING),
        lambda layer, r: layer(_x(r), _x(r)),
        ["position_embedding", "row_attention_0", "row_mlp_0", "column_attention_0",
         "column_mlp_0"], {},
    ),
    "PositionEmbedding": (
        lambda: L.PositionEmbedding(H, W, D),
        lambda layer, r: layer(_x(r)),
        [], {},
    ),
    "PostLNResidual": (
        lambda: L.PostLNResidual(D, 0.1),
        lambda layer, r: layer(_x(r), _x(r)),
        ["dropout", "norm"], {},
    ),
    "PostLNResidual-cond": (
        lambda: L.PostLNResidual(D, 0.0, conditional=True, height=H, width=W,
                                 cond_ln_kwargs=COND_LN_KWARGS),
        lambda layer, r: layer(_x(r), _x(r), context=_x(r, d=C)),
        ["dropout", "norm"], {"norm": ["normalize", "dense"]},
    ),
    "SymbolEmbedding": (
        lambda: L.SymbolEmbedding(16, D, use_bias=True),
        lambda layer, r: layer(np.array([[1, 2, 15]])),
        [], {},
    ),
}


# iColoriT's layers: tokens of a 3x3 patch grid.
GRID = 3
ICOLORIT_LAYERS = {
    "RelativeAttention": icolorit_attention.RelativeAttention,
    "TransformerBlock": icolorit_block.TransformerBlock,
    "LocalStabilizingHead": icolorit_head.LocalStabilizingHead,
    "PatchEmbedding": icolorit_patch_embedding.PatchEmbedding,
}
LAYER_CASES.update({
    "RelativeAttention": (
        lambda: icolorit_attention.RelativeAttention(D, HEADS, GRID),
        lambda layer, r: layer(_rand(r, B, GRID * GRID, D)),
        ["qkv", "proj"], {},
    ),
    "TransformerBlock": (
        lambda: icolorit_block.TransformerBlock(D, HEADS, GRID, mlp_ratio=2, drop_path=0.1),
        lambda layer, r: layer(_rand(r, B, GRID * GRID, D)),
        ["norm1", "attn", "norm2", "fc1", "fc2"], {"attn": ["qkv", "proj"]},
    ),
    "LocalStabilizingHead": (
        lambda: icolorit_head.LocalStabilizingHead(2, GRID, D),
        lambda layer, r: layer(_rand(r, B, GRID * GRID, D)),
        ["conv"], {},
    ),
    "PatchEmbedding": (
        lambda: icolorit_patch_embedding.PatchEmbedding(2, D),
        lambda layer, r: layer(_rand(r, B, 2 * GRID, 2 * GRID, 4)),
        [], {},
    ),
})


UNBUILT_CASES = ("InnerDecoder-variant", "OuterDecoder-baseline")


def test_layer_cases_cover_every_public_layer():
    covered = {name.split("-")[0] for name in LAYER_CASES}
    assert covered == set(L.__all__) | set(ICOLORIT_LAYERS)


@pytest.mark.parametrize("case", sorted(set(LAYER_CASES) - set(UNBUILT_CASES)))
def test_one_training_step_moves_every_layer(case):
    """Gradients reach the layer's weights and one SGD step changes them."""
    factory, build, _, _ = LAYER_CASES[case]
    rng = np.random.default_rng(1)
    layer = factory()
    build(layer, rng)  # creates the variables
    if not layer.trainable_variables:
        pytest.skip(f"{case} has no trainable weights")
    before = [np.array(v) for v in layer.trainable_variables]
    with tf.GradientTape() as tape:
        out = tf.cast(build(layer, np.random.default_rng(1)), tf.float32)
        direction = np.random.default_rng(2).normal(size=out.shape).astype(np.float32)
        loss = tf.reduce_mean(out * direction)  # linear: a gradient even where out is 0
    grads = tape.gradient(loss, layer.trainable_variables)
    assert np.isfinite(float(loss))
    keras.optimizers.SGD(0.5).apply([g if g is not None else tf.zeros_like(v)
                                     for g, v in zip(grads, layer.trainable_variables)],
                                    layer.trainable_variables)
    changed = [not np.allclose(b, np.array(v)) for b, v in zip(before,
                                                               layer.trainable_variables)]
    assert any(changed), case


@pytest.mark.filterwarnings(r"ignore:`build\(\)` was called on layer:UserWarning")
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_get_config_round_trip(case):
    factory, build, children, _ = LAYER_CASES[case]
    rng = np.random.default_rng(0)
    layer = factory()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # ... also through keras' generic (de)serialisation, and after building.
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config
    if case in UNBUILT_CASES:
        return  # slow to build; the same classes are built in their main case
    build(layer, rng)
    assert layer.get_config() == config
    # The clone creates the same variables (names and shapes; skipped for the
    # big composites, whose building is slow) ...
    if case.split("-")[0] not in ("OuterDecoder", "InnerDecoder", "AxialEncoder"):
        build(clone, rng)
        assert [(w.path.split("/", 1)[-1], tuple(w.shape)) for w in clone.weights] == [
            (w.path.split("/", 1)[-1], tuple(w.shape)) for w in layer.weights]
    # ... whose paths are built from the fixed sub-layer names (checkpoints map on them).
    for w in layer.weights:
        parts = w.path.split("/")
        assert parts[0] == layer.name
        if len(parts) > 2:
            assert parts[1] in children


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_sublayer_names_are_fixed(case):
    factory, _, children, grandchildren = LAYER_CASES[case]
    first, second = factory(), factory()  # a second instance must not get "_1" suffixes
    for layer in (first, second):
        assert _children(layer) == children
        for child in layer._flatten_layers(include_self=False, recursive=False):
            if child.name in grandchildren:
                assert _children(child) == grandchildren[child.name]


def test_stacked_layer_names():
    # Names of the repeated blocks (unbuilt, so cheap).
    encoder = L.AxialEncoder(D, FF, HEADS, 3, H, W)
    assert _children(encoder) == ["position_embedding", "layer_0", "layer_1", "layer_2"]
    outer = L.OuterDecoder(D, FF, HEADS, 2, H, W)
    assert _children(outer) == ["position_embedding"] + [
        f"{kind}_{i}" for i in range(2)
        for kind in ("row_attention", "row_mlp", "column_attention", "column_mlp")]
    inner = L.InnerDecoder(D, FF, HEADS, 2, H, W)
    assert _children(inner) == ["position_embedding"] + [
        f"{kind}_{i}" for i in range(2) for kind in ("row_attention", "row_mlp")]
    assert [b.axis for b in outer.blocks if isinstance(b, L.DecoderAttentionBlock)] == [
        "row", "column"] * 2
    assert [b.mask for b in outer.blocks if isinstance(b, L.DecoderAttentionBlock)] == [
        None, "future"] * 2
    assert [(b.axis, b.mask) for b in inner.blocks
            if isinstance(b, L.DecoderAttentionBlock)] == [("row", "future")] * 2


def test_axial_attention_variable_paths():
    layer = L.AxialAttention(D, HEADS, "row", W, cond_q=True, cond_v=True, name="att")
    layer(_x(np.random.default_rng(0)), context=_x(np.random.default_rng(1), d=C))
    shapes = {w.path: tuple(w.shape) for w in layer.weights}
    e = D // HEADS
    assert shapes == {
        "att/relative_attention_bias": (HEADS, 2 * W),
        "att/q/kernel": (D, HEADS, e),
        "att/k/kernel": (D, HEADS, e),
        "att/v/kernel": (D, HEADS, e),
        "att/output/kernel": (HEADS, e, D),
        "att/cond_q/kernel": (C, HEADS, 2 * e),
        "att/cond_v/kernel": (C, HEADS, 2 * e),
    }


def test_decoder_blocks_resolve_and_serialise_conditioning():
    block = L.DecoderMLPBlock(D, FF, H, W, conditioning={"cond_mlp": "none"})
    assert block.get_config()["conditioning"] == resolve_conditioning({"cond_mlp": ""})
    assert not block.is_conditional
    assert resolve_conditioning(None) == CONDITIONING_DEFAULTS


# ---------------------------------------------------------------------------
# PositionEmbedding
# ---------------------------------------------------------------------------


def test_position_embedding_adds_row_and_column_tables():
    rng = np.random.default_rng(0)
    layer = L.PositionEmbedding(H, W, D)
    x = _x(rng)
    layer(x)
    rows, cols = _rand(rng, H, D), _rand(rng, W, D)
    layer.row_embedding.assign(rows[:, None])
    layer.column_embedding.assign(cols)
    expected = x.astype(np.float64) + rows[:, None] + cols[None, :]
    assert_allclose(_np(layer(x)), expected, rtol=1e-6, atol=1e-6)
    # Element by element, to rule out a transposed broadcast.
    assert_allclose(_np(layer(x))[1, 2, 3], x[1, 2, 3] + rows[2] + cols[3], rtol=1e-6,
                    atol=1e-6)


def test_position_embedding_initial_tables():
    layer = L.PositionEmbedding(64, 64, 256)
    layer.build((None, 64, 64, 256))
    assert tuple(layer.row_embedding.shape) == (64, 1, 256)
    assert tuple(layer.column_embedding.shape) == (64, 256)
    std = np.std(_np(layer.row_embedding))
    assert abs(std - 256**-0.5) < 0.2 * 256**-0.5


@pytest.mark.parametrize("as_tensor", [False, True])
def test_position_embedding_single_row(as_tensor):
    rng = np.random.default_rng(1)
    layer = L.PositionEmbedding(H, W, D)
    x = _x(rng)
    full = _np(layer(x))
    for i in range(H):
        row = keras.ops.convert_to_tensor(i, "int32") if as_tensor else i
        single = _np(layer(x[:, i:i + 1], row=row))
        assert single.shape == (B, 1, W, D)
        assert_allclose(single, full[:, i:i + 1], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# AxialAttention against a numpy implementation of the spec
# ---------------------------------------------------------------------------


def _np_axial_attention(x, context, weights, axis, mask, cond_scale, act, num_heads):
    """Independent float64 implementation of spec §3's axial attention."""
    x = x.astype(np.float64)
    if axis == "column":  # attend over H: make it the sequence axis
        x = x.transpose(0, 2, 1, 3)
        context = None if context is None else context.transpose(0, 2, 1, 3)
    depth = x.shape[-1] // num_heads
    length = x.shape[2]
    act = NP_ACT[act]

    def projection(which):
        t = np.einsum("bsld,dhe->bslhe", x, weights[which])
        if f"cond_{which}" in weights:
            c = np.einsum("bslc,che->bslhe", context, weights[f"cond_{which}"])
            if cond_scale:
                scale, shift = c[..., :depth], c[..., depth:]
                t = t * act(scale) + act(shift)
            else:
                t = t + c
        return t

    q = projection("q") * depth**-0.5
    k, v = projection("k"), projection("v")
    logits = np.einsum("bsqhe,bskhe->bshqk", q, k)
    table = weights["relative_attention_bias"]
    bias = np.zeros((num_heads, length, length))
    for h in range(num_heads):
        for qi in range(length):
            for ki in range(length):
                bias[h, qi, ki] = table[h, ki - qi + length - 1]
                if mask == "future" and ki > qi:
                    bias[h, qi, ki] += -1e6
    probs = _np_softmax(logits + bias)
    out = np.einsum("bshqk,bskhe->bsqhe", probs, v)
    y = np.einsum("bsqhe,hed->bsqd", out, weights["output"])
    return y.transpose(0, 2, 1, 3) if axis == "column" else y


def _randomise_attention(layer, rng):
    weights = {}
    for w in layer.weights:
        name = w.path.split("/")[-2] if w.path.endswith("kernel") else w.path.split("/")[-1]
        value = _rand(rng, *w.shape, scale=0.5)
        w.assign(value)
        weights[name] = value.astype(np.float64)
    return weights


ATTENTION_CONDITIONING = {
    "none": {},
    "qkv-scale": dict(cond_q=True, cond_k=True, cond_v=True, cond_scale=True),
    "qkv-scale-sigmoid": dict(cond_q=True, cond_k=True, cond_v=True, cond_scale=True,
                              cond_act="sigmoid"),
    "qkv-add": dict(cond_q=True, cond_k=True, cond_v=True, cond_scale=False),
    "q-scale-tanh": dict(cond_q=True, cond_scale=True, cond_act="tanh"),
    "v-add": dict(cond_v=True, cond_scale=False),
}


@pytest.mark.parametrize("cond", sorted(ATTENTION_CONDITIONING))
@pytest.mark.parametrize("mask", [None, "future"])
@pytest.mark.parametrize("axis", ["row", "column"])
def test_axial_attention_matches_numpy(axis, mask, cond):
    rng = np.random.default_rng(zlib.crc32(f"{axis}-{mask}-{cond}".encode()))
    kwargs = ATTENTION_CONDITIONING[cond]
    length = W if axis == "row" else H
    layer = L.AxialAttention(D, HEADS, axis, length, mask=mask, **kwargs)
    x, context = _x(rng), _x(rng, d=C)
    ctx = context if layer.is_conditional else None
    layer(x, context=ctx)
    weights = _randomise_attention(layer, rng)
    assert set(weights) == {"q", "k", "v", "output", "relative_attention_bias"} | {
        f"cond_{w}" for w in "qkv" if kwargs.get(f"cond_{w}")}
    got = _np(layer(x, context=ctx))
    expected = _np_axial_attention(x, context, weights, axis, mask,
                                   kwargs.get("cond_scale", True),
                                   kwargs.get("cond_act", "identity"), HEADS)
    assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_axial_attention_future_mask_is_causal():
    rng = np.random.default_rng(3)
    layer = L.AxialAttention(D, 1, "row", W, mask="future")
    x = _x(rng)
    layer(x)
    weights = _randomise_attention(layer, rng)
    got = _np(layer(x))
    assert_allclose(got, _np_axial_attention(x, None, weights, "row", "future", True,
                                             "identity", 1), rtol=1e-4, atol=1e-5)
    # Causality: output at column j does not depend on input columns > j.
    for j in range(W - 1):
        x2 = x.copy()
        x2[:, :, j + 1:] += 3.0
        assert_allclose(_np(layer(x2))[:, :, :j + 1], got[:, :, :j + 1], atol=1e-6, rtol=0)
        assert np.abs(_np(layer(x2))[:, :, j + 1:] - got[:, :, j + 1:]).max() > 1e-3


def test_axial_attention_relative_bias_index():
    # q = k = 0 -> uniform logits, so the attention weights are softmax(bias):
    # recover them from the output with identity-like v/output kernels.
    length = W
    layer = L.AxialAttention(length, 1, "row", length)
    x = np.tile(np.eye(length, dtype="float32")[None, None], (1, 1, 1, 1))  # (1,1,L,L)
    layer(x)
    table = np.random.default_rng(4).standard_normal((1, 2 * length)).astype("float32")
    layer.q.kernel.assign(np.zeros((length, 1, length), "float32"))
    layer.k.kernel.assign(np.zeros((length, 1, length), "float32"))
    layer.v.kernel.assign(np.eye(length, dtype="float32")[:, None])
    layer.output_projection.kernel.assign(np.eye(length, dtype="float32")[None])
    layer.relative_bias.assign(table)
    probs = _np(layer(x))[0, 0]  # (query, key): one-hot v picks each key's weight
    bias = np.array([[table[0, k - q + length - 1] for k in range(length)]
                     for q in range(length)])
    assert_allclose(probs, _np_softmax(bias), rtol=1e-5, atol=1e-6)


def test_axial_attention_mask_is_minus_1e6_added_after_the_bias():
    # logits + bias + mask with mask = -1e6 (not -inf): a relative bias of +1e6
    # on the future positions exactly cancels the mask there. q = k = 0, so the
    # attention weights are softmax(bias + mask), read off with one-hot values.
    length = W
    layer = L.AxialAttention(length, 1, "row", length, mask="future")
    x = np.eye(length, dtype="float32")[None, None]
    layer(x)
    table = np.random.default_rng(13).standard_normal((1, 2 * length)).astype("float32")
    table[0, length:] = 1e6  # k - q > 0
    layer.q.kernel.assign(np.zeros((length, 1, length), "float32"))
    layer.k.kernel.assign(np.zeros((length, 1, length), "float32"))
    layer.v.kernel.assign(np.eye(length, dtype="float32")[:, None])
    layer.output_projection.kernel.assign(np.eye(length, dtype="float32")[None])
    layer.relative_bias.assign(table)
    probs = _np(layer(x))[0, 0]
    logits = np.array([[table[0, k - q + length - 1] if k <= q else 0.0
                        for k in range(length)] for q in range(length)])
    assert_allclose(probs, _np_softmax(logits), rtol=1e-5, atol=1e-6)
    assert probs[0, -1] > 0.01  # the "masked" last key is visible from query 0


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1:UserWarning")
@pytest.mark.parametrize("mask", [None, "future"])
@pytest.mark.parametrize("axis", ["row", "column"])
def test_attend_single_query_with_offset_equals_full_attention(axis, mask):
    rng = np.random.default_rng(5)
    length = W if axis == "row" else H
    layer = L.AxialAttention(D, HEADS, axis, length, mask=mask, cond_q=True, cond_k=True,
                             cond_v=True)
    x, context = _x(rng), _x(rng, d=C)
    layer(x, context=context)
    _randomise_attention(layer, rng)
    q, k, v = (layer.to_sequence(t) for t in layer.project(x, context))
    full = _np(layer.attend(q, k, v))
    assert full.shape[-3:] == (length, HEADS, D // HEADS)
    # Consistent with call().
    assert_allclose(_np(layer(x, context=context)),
                    _np(layer.output_projection(layer.from_sequence(layer.attend(q, k, v)))),
                    rtol=1e-5, atol=1e-6)
    attend_fn = tf.function(layer.attend)
    for j in range(length):
        qj = q[..., j:j + 1, :, :]
        single = _np(layer.attend(qj, k, v, query_offset=j))
        assert_allclose(single, full[..., j:j + 1, :, :], rtol=1e-5, atol=1e-6)
        # A tensor offset inside a tf.function (what a compiled sampler passes).
        traced = _np(attend_fn(qj, k, v, query_offset=tf.constant(j)))
        assert_allclose(traced, full[..., j:j + 1, :, :], rtol=1e-5, atol=1e-6)
        if mask == "future":  # keys after the query may be absent from a cache
            prefix = _np(layer.attend(qj, k[..., :j + 1, :, :], v[..., :j + 1, :, :],
                                      query_offset=j))
            assert_allclose(prefix, full[..., j:j + 1, :, :], rtol=1e-5, atol=1e-6)
    # A block of queries at an offset.
    block = _np(layer.attend(q[..., 1:3, :, :], k, v, query_offset=1))
    assert_allclose(block, full[..., 1:3, :, :], rtol=1e-5, atol=1e-6)


def test_axial_attention_conditioning_before_q_scaling():
    # With additive conditioning on q only, q_final = (Wq x + Wc c) * depth^-0.5;
    # conditioning after the scaling would leave Wc c unscaled.
    rng = np.random.default_rng(6)
    layer = L.AxialAttention(D, HEADS, "row", W, cond_q=True, cond_scale=False)
    x, context = _x(rng), _x(rng, d=C)
    layer(x, context=context)
    weights = _randomise_attention(layer, rng)
    q, _, _ = layer.project(x, context)
    expected = (np.einsum("bhwd,dne->bhwne", x, weights["q"])
                + np.einsum("bhwc,cne->bhwne", context, weights["cond_q"])) * (D // HEADS)**-0.5
    assert_allclose(_np(q), expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# ConditionalLayerNorm
# ---------------------------------------------------------------------------


def _np_conditional_layer_norm(x, context, kernel, bias, spatial_weights, spatial_average,
                               sequence, act):
    context = context.astype(np.float64)

    def pool(c):
        if spatial_average == "learnable":
            c = c * spatial_weights
        return c.mean(axis=(1, 2), keepdims=True)

    if sequence == "sc":
        out = pool(context) @ kernel + bias
    else:
        out = pool(context @ kernel + bias)
    d = x.shape[-1]
    scale, shift = NP_ACT[act](out[..., :d]), NP_ACT[act](out[..., d:])
    return _np_layer_norm(x.astype(np.float64)) * scale + shift


@pytest.mark.parametrize("act", ["identity", "sigmoid"])
@pytest.mark.parametrize("sequence", ["sc", "cs"])
@pytest.mark.parametrize("spatial_average", ["learnable", "mean"])
def test_conditional_layer_norm_matches_numpy(spatial_average, sequence, act):
    rng = np.random.default_rng(7)
    layer = L.ConditionalLayerNorm(D, H, W, spatial_average=spatial_average,
                                   sequence=sequence, out_act=act)
    x, context = _x(rng) * 3 + 1, _x(rng, d=C)
    layer(x, context=context)
    kernel, bias = _rand(rng, C, 2 * D), _rand(rng, 2 * D)
    layer.dense.kernel.assign(kernel)
    layer.dense.bias.assign(bias)
    spatial = None
    if spatial_average == "learnable":
        assert_array_equal(_np(layer.spatial_weights), np.ones((1, H, W, 1)))
        spatial = _rand(rng, 1, H, W, 1)
        layer.spatial_weights.assign(spatial)
    else:
        assert not hasattr(layer, "spatial_weights")
    expected = _np_conditional_layer_norm(x, context, kernel.astype(np.float64),
                                          bias.astype(np.float64), spatial, spatial_average,
                                          sequence, act)
    got = _np(layer(x, context=context))
    assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Precomputed conditions give the same result.
    assert_allclose(_np(layer(x, conditions=layer.condition(context))), got, rtol=1e-6,
                    atol=1e-6)


def test_conditional_layer_norm_normalize_is_frozen():
    layer = L.ConditionalLayerNorm(D, H, W)
    rng = np.random.default_rng(8)
    layer(_x(rng), context=_x(rng, d=C))
    norm = layer.normalize
    assert isinstance(norm, L.LayerNorm)
    assert not norm.trainable
    assert norm.epsilon == 1e-3
    assert {w.path.split("/")[-1] for w in norm.weights} == {"gamma", "beta"}
    assert norm.trainable_weights == []
    assert_array_equal(_np(norm.gamma), np.ones(D))
    assert_array_equal(_np(norm.beta), np.zeros(D))
    trainable = {w.path for w in layer.trainable_weights}
    assert not any("normalize" in p for p in trainable)
    assert {p.split("/", 1)[1] for p in trainable} == {"spatial_average", "dense/kernel",
                                                      "dense/bias"}


def test_layer_norm_matches_numpy():
    rng = np.random.default_rng(9)
    layer = L.LayerNorm()
    x = _x(rng) * 5 + 2
    layer(x)
    gamma, beta = _rand(rng, D), _rand(rng, D)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    assert layer.epsilon == 1e-3
    assert_allclose(_np(layer(x)), _np_layer_norm(x.astype(np.float64)) * gamma + beta,
                    rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("conditional", [False, True])
def test_post_ln_residual_is_norm_of_sum(conditional):
    rng = np.random.default_rng(10)
    x, y, context = _x(rng), _x(rng), _x(rng, d=C)
    layer = L.PostLNResidual(D, 0.5, conditional=conditional, height=H, width=W,
                             cond_ln_kwargs=COND_LN_KWARGS)
    kwargs = {"context": context} if conditional else {}
    out = _np(layer(x, y, **kwargs))
    norm_kwargs = {"context": context} if conditional else {}
    assert_allclose(out, _np(layer.norm(x + y, **norm_kwargs)), rtol=1e-5, atol=1e-6)
    # Dropout only in training.
    assert not np.allclose(_np(layer(x, y, training=True, **kwargs)), out)


# ---------------------------------------------------------------------------
# FeedForward / ConditionalFeedForward
# ---------------------------------------------------------------------------


def _randomise_ffn(ffn, rng):
    params = {}
    for w in ffn.weights:
        value = _rand(rng, *w.shape, scale=0.5)
        w.assign(value)
        params["/".join(w.path.split("/")[-2:])] = value.astype(np.float64)
    return params


def _np_ffn(x, p):
    hidden = np.maximum(x @ p["expand/kernel"] + p["expand/bias"], 0.0)
    return hidden @ p["project/kernel"] + p["project/bias"]


def test_feed_forward_matches_numpy():
    rng = np.random.default_rng(11)
    layer = L.FeedForward(D, FF)
    x = _x(rng)
    layer(x)
    p = _randomise_ffn(layer, rng)
    assert_allclose(_np(layer(x)), _np_ffn(x.astype(np.float64), p), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode,act", [("affine", "identity"), ("affine", "sigmoid"),
                                      ("affine", "tanh"), ("shift", "identity")])
def test_conditional_feed_forward_matches_numpy(mode, act):
    rng = np.random.default_rng(12)
    layer = L.ConditionalFeedForward(D, FF, mode, act)
    x, context = _x(rng), _x(rng, d=C)
    layer(x, context)
    p = _randomise_ffn(layer, rng)
    assert p["cond/kernel"].shape == (C, 2 * D if mode == "affine" else D)
    hidden = _np_ffn(x.astype(np.float64), p)
    cond = context.astype(np.float64) @ p["cond/kernel"] + p["cond/bias"]
    if mode == "affine":
        shift, scale = cond[..., :D], cond[..., D:]  # shift first
        expected = hidden * NP_ACT[act](scale) + NP_ACT[act](shift)
    else:
        expected = hidden + cond
    assert_allclose(_np(layer(x, context)), expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# Option validation
# ---------------------------------------------------------------------------

BAD_OPTIONS = {
    "attention-axis": (lambda: L.AxialAttention(D, HEADS, "diag", W),
                       r"axis='diag'.*'row'.*'column'"),
    "attention-mask": (lambda: L.AxialAttention(D, HEADS, "row", W, mask="past"),
                       r"mask='past'.*future"),
    "attention-heads": (lambda: L.AxialAttention(D, 3, "row", W), r"divisible"),
    "attention-act": (lambda: L.AxialAttention(D, HEADS, "row", W, cond_q=True,
                                               cond_act="swish"),
                      r"activation 'swish'.*identity.*relu.*sigmoid.*tanh"),
    "cln-spatial": (lambda: L.ConditionalLayerNorm(D, H, W, spatial_average="max"),
                    r"cond_ln_sp_ave='max'.*learnable.*mean"),
    "cln-sequence": (lambda: L.ConditionalLayerNorm(D, H, W, sequence="ss"),
                     r"cond_ln_seq='ss'.*sc.*cs"),
    "cln-act": (lambda: L.ConditionalLayerNorm(D, H, W, out_act="swish"),
                r"activation 'swish'"),
    "resolve-unknown-key": (lambda: resolve_conditioning({"cond_mlpp": "affine"}),
                            r"cond_mlpp.*valid keys.*cond_mlp"),
    "ffn-mode": (lambda: L.ConditionalFeedForward(D, FF, "scale"),
                 r"cond_mlp='scale'.*affine.*shift"),
    "ffn-act": (lambda: L.ConditionalFeedForward(D, FF, "affine", "swish"),
                r"activation 'swish'"),
    "get-activation": (lambda: get_activation("swish"),
                       r"Unknown activation 'swish'.*identity"),
    "decoder-block-mlp": (lambda: L.DecoderMLPBlock(D, FF, H, W,
                                                    conditioning={"cond_mlp": "scale"}),
                          r"cond_mlp='scale'"),
    "decoder-bad-ln": (lambda: L.DecoderAttentionBlock(D, HEADS, "row", None, H, W,
                                                       conditioning={"cond_ln_sp_ave": "max"}),
                       r"cond_ln_sp_ave='max'"),
    "outer-unknown-key": (lambda: L.OuterDecoder(D, FF, HEADS, 1, H, W,
                                                 conditioning={"cond_att_qq": True}),
                          r"cond_att_qq"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_unknown_options_raise_helpful_value_error(case):
    factory, message = BAD_OPTIONS[case]
    with pytest.raises(ValueError, match=message):
        factory()


def test_conditional_attention_without_context_raises():
    layer = L.AxialAttention(D, HEADS, "row", W, cond_k=True)
    with pytest.raises(ValueError, match="needs a context"):
        layer(_x(np.random.default_rng(0)))


# ---------------------------------------------------------------------------
# image_ops
# ---------------------------------------------------------------------------


def _random_rgb(n, seed=0):
    rgb = np.random.default_rng(seed).integers(0, 256, (n, 3)).astype(np.int32)
    # Include the extremes and every gray level.
    extremes = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
                        np.int32)
    levels = np.repeat(np.arange(256, dtype=np.int32)[:, None], 3, axis=1)
    return np.concatenate([rgb, extremes, levels])


def test_rgb_to_grayscale_matches_tf_image():
    rgb = _random_rgb(100_000)
    expected = tf.image.rgb_to_grayscale(tf.constant(rgb)).numpy()
    got = keras.ops.convert_to_numpy(image_ops.rgb_to_grayscale(rgb))
    assert got.dtype == np.int32
    assert got.shape == (len(rgb), 1)
    assert_array_equal(got, expected)
    # Truncation, not rounding, is what TF does (and there are cases where it matters).
    rounded = np.round(rgb.astype(np.float64) @ [0.2989, 0.5870, 0.1140]).astype(np.int32)
    assert (rounded != expected[:, 0]).any()
    # Images of any rank.
    images = rgb[:100_000].reshape(10, 100, 100, 3)
    assert_array_equal(keras.ops.convert_to_numpy(image_ops.rgb_to_grayscale(images)),
                       tf.image.rgb_to_grayscale(tf.constant(images)).numpy())


def test_rgb_to_grayscale_inside_tf_data_map():
    rgb = _random_rgb(100_000, seed=1)[:100_000].reshape(1000, 10, 10, 3)
    ds = tf.data.Dataset.from_tensor_slices(rgb).map(
        lambda x: (image_ops.rgb_to_grayscale(x), tf.image.rgb_to_grayscale(x)))
    ds = ds.batch(250)
    got, expected = zip(*[(a.numpy(), b.numpy()) for a, b in ds])
    got, expected = np.concatenate(got), np.concatenate(expected)
    assert got.dtype == np.int32 and got.shape == (1000, 10, 10, 1)
    assert_array_equal(got, expected)
    assert_array_equal(got, tf.image.rgb_to_grayscale(tf.constant(rgb)).numpy())


def test_convert_bits():
    x = np.arange(256, dtype=np.int32)
    down = keras.ops.convert_to_numpy(image_ops.convert_bits(x, 8, 3))
    assert down.dtype == np.int32
    assert_array_equal(down, x // 32)
    assert_array_equal(down, np.floor(x / 32).astype(np.int32))
    coarse = np.arange(8, dtype=np.int32)
    up = keras.ops.convert_to_numpy(image_ops.convert_bits(coarse, 3, 8))
    assert up.dtype == np.int32
    assert_array_equal(up, coarse * 32)
    assert_array_equal(keras.ops.convert_to_numpy(image_ops.convert_bits(x, 8, 8)), x)


def test_symbol_round_trip_all_512():
    symbols = np.arange(512, dtype=np.int32)
    labels = keras.ops.convert_to_numpy(image_ops.bins_to_labels(symbols))
    assert labels.shape == (512, 3)
    assert_array_equal(labels, np.stack([symbols // 64, (symbols // 8) % 8, symbols % 8], -1))
    assert labels.min() == 0 and labels.max() == 7
    assert_array_equal(keras.ops.convert_to_numpy(image_ops.labels_to_bins(labels)), symbols)
    # r*64 + g*8 + b on every 3-bit triple.
    r, g, b = np.meshgrid(np.arange(8), np.arange(8), np.arange(8), indexing="ij")
    triples = np.stack([r, g, b], -1).reshape(-1, 3)
    assert_array_equal(keras.ops.convert_to_numpy(image_ops.labels_to_bins(triples)),
                       triples @ [64, 8, 1])
    # Through 8-bit RGB and back.
    rgb = keras.ops.convert_to_numpy(image_ops.coarse_symbols_to_rgb(symbols))
    assert rgb.dtype == np.uint8
    assert_array_equal(rgb, labels * 32)
    assert_array_equal(keras.ops.convert_to_numpy(image_ops.rgb_to_coarse_symbols(rgb)),
                       symbols)
    assert_array_equal(keras.ops.convert_to_numpy(image_ops.rgb_to_coarse_symbols(rgb + 31)),
                       symbols)
