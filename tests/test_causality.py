"""Causality of the ColTran colorizer (spec COLTRAN.md §4).

The logits at pixel (i, j) must depend only on the symbols of the pixels
before it in raster order (rows above, and pixels to the left in row i), for
every conditioning variant the configs can express. A tiny ColTranCore is
built directly; its relative-position tables and learnable pooling weights
are set to random values so that nothing hides behind their trivial
initialisation.
"""

import functools

import keras
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from coltran_tf.layers import InnerDecoder, OuterDecoder
from coltran_tf.layers.conditioning import BASELINE_CONDITIONING
from coltran_tf.models import ColTranCore

RES = 8
HIDDEN = 16
ACTS = ("cond_mlp_act", "cond_ln_act", "cond_att_act")

VARIANTS = {
    "paper": None,
    "baseline": BASELINE_CONDITIONING,
    "mlp-shift": {"cond_mlp": "shift"},
    "ln-mean": {"cond_ln_sp_ave": "mean"},
    "ln-cs": {"cond_ln_seq": "cs"},
    "att-add": {"cond_att_scale": False},
    "sigmoid": {k: "sigmoid" for k in ACTS},
    "tanh": {k: "tanh" for k in ACTS},
}

# (i, j) to perturb: first, mid-row, row start/end and the last pixel.
PIXELS = [(0, 0), (3, 4), (5, 0), (2, RES - 1), (RES - 1, RES - 1)]

# A change below ATOL counts as "unchanged" (in practice it is exactly 0).
ATOL = 1e-6
LIVE = 1e-5


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _randomise_tables(layer, rng):
    for w in layer.weights:
        name = w.path.split("/")[-1]
        if name == "relative_attention_bias":
            w.assign(rng.standard_normal(w.shape).astype("float32"))
        elif name == "spatial_average":
            w.assign((1.0 + 0.5 * rng.standard_normal(w.shape)).astype("float32"))


def _assert_reaches(diff, what):
    """Non-vacuity: the perturbation is seen, clearly, by (nearly) all of `diff`."""
    assert diff.size and diff.max() > LIVE, f"{what}: no visible effect at all"
    assert (diff > ATOL).mean() >= 0.8, f"{what}: reaches only {(diff > ATOL).mean():.0%}"


def _inputs(seed, batch=2):
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, (batch, RES, RES, 1)).astype("int32")
    symbols = rng.integers(0, 512, (batch, RES, RES)).astype("int32")
    return gray, symbols


def _build(model):
    """Creates all variables, always in the same way (their paths depend on it)."""
    gray, symbols = _inputs(0)
    model.decode(symbols, model.encode(gray))
    model.parallel_head(model.encode(gray))


@functools.cache
def _model(variant):
    keras.utils.set_random_seed(42)
    model = ColTranCore(resolution=RES, hidden_size=HIDDEN, encoder_ff_size=16,
                        encoder_num_heads=2, num_encoder_layers=1, decoder_ff_size=16,
                        decoder_num_heads=2, num_outer_layers=1, num_inner_layers=1,
                        conditioning=VARIANTS[variant])
    _build(model)
    _randomise_tables(model, np.random.default_rng(7))
    return model


def _earlier_or_same(i, j):
    """(R, R) bool mask of the pixels at or before (i, j) in raster order."""
    rows, cols = np.meshgrid(np.arange(RES), np.arange(RES), indexing="ij")
    return (rows < i) | ((rows == i) & (cols <= j))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_logits_depend_only_on_earlier_pixels(variant):
    model = _model(variant)
    gray, symbols = _inputs(1)
    perturbed = []
    for i, j in PIXELS:
        p = symbols.copy()
        p[:, i, j] = (p[:, i, j] + np.array([1, 257])) % 512
        perturbed.append(p)
    # One call for all: the original and every perturbation stacked on the batch
    # axis (batch independence is tested below).
    z = model.encode(np.concatenate([gray] * (1 + len(PIXELS))))
    logits = _np(model.decode(np.concatenate([symbols] + perturbed), z))
    assert logits.shape == (2 * (1 + len(PIXELS)), RES, RES, 1, 512)
    assert np.isfinite(logits).all()
    logits = logits.reshape(1 + len(PIXELS), 2, RES, RES, 512)
    for (i, j), changed in zip(PIXELS, logits[1:]):
        diff = np.abs(changed - logits[0]).max(axis=-1)  # (B, R, R)
        before = _earlier_or_same(i, j)  # includes (i, j): its logits predict it
        assert diff[:, before].max() <= ATOL, (
            f"{variant}: symbol at {(i, j)} leaks into pixels at or before it: "
            f"{np.argwhere(diff[0] > ATOL).tolist()}")
        if (i, j) != (RES - 1, RES - 1):
            # Not vacuous: the later pixels see it (the outer decoder's row
            # attention spreads row i over the rows below; the inner decoder
            # carries it to the right).
            _assert_reaches(diff[:, ~before], f"{variant}: symbol at {(i, j)}")


@pytest.mark.parametrize("variant", ["paper", "baseline"])
def test_logits_depend_on_grayscale_everywhere(variant):
    # The grayscale is fully visible: a single gray pixel reaches every logit.
    model = _model(variant)
    gray, symbols = _inputs(2)
    logits = _np(model.decode(symbols, model.encode(gray)))
    gray2 = gray.copy()
    gray2[:, RES - 1, RES - 1] = (gray2[:, RES - 1, RES - 1] + 128) % 256
    logits2 = _np(model.decode(symbols, model.encode(gray2)))
    _assert_reaches(np.abs(logits2 - logits).max(axis=(-2, -1)), "gray pixel")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_batch_of_two_equals_two_batches_of_one(variant):
    model = _model(variant)
    gray, symbols = _inputs(3)
    both = _np(model.decode(symbols, model.encode(gray)))
    for b in range(2):
        one = _np(model.decode(symbols[b:b + 1], model.encode(gray[b:b + 1])))
        assert_allclose(one[0], both[b], atol=1e-5, rtol=0)
    if variant not in ("paper", "baseline"):
        return
    # The Keras entry point on RGB.
    rgb = np.random.default_rng(4).integers(0, 256, (2, RES, RES, 3)).astype("int32")
    outputs = model(rgb)
    assert set(outputs) == {"logits", "encoder_logits"}
    assert outputs["encoder_logits"].shape == (2, RES, RES, 1, 512)
    for b in range(2):
        one = model(rgb[b:b + 1])
        assert_allclose(_np(one["logits"])[0], _np(outputs["logits"])[b], atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_config_round_trip(variant):
    model = _model(variant)
    config = model.get_config()
    clone = ColTranCore.from_config(config)
    assert clone.get_config() == config
    assert config["conditioning"] == clone.conditioning
    if variant != "paper":
        return  # building is slow: the variable check runs on one variant
    # Same variables, so that the clone can take the model's weights ...
    _build(clone)
    gray, symbols = _inputs(5, batch=1)
    assert [(w.path, tuple(w.shape)) for w in clone.weights] == [
        (w.path, tuple(w.shape)) for w in model.weights]
    clone.set_weights(model.get_weights())
    # ... and then computes the same logits.
    assert_allclose(_np(clone.decode(symbols, clone.encode(gray))),
                    _np(model.decode(symbols, model.encode(gray))), atol=1e-6, rtol=0)


def test_frozen_norm_parameters_are_not_trainable():
    model = _model("paper")
    trainable = {w.path for w in model.trainable_weights}
    frozen = [w for w in model.weights if "/normalize/" in w.path]
    assert frozen  # the paper's decoder has conditional layer norms
    assert not any(w.path in trainable for w in frozen)
    assert not any("/normalize/" in p for p in trainable)


# ---------------------------------------------------------------------------
# The two decoders on their own (canvas 6 x 5, so rows and columns differ)
# ---------------------------------------------------------------------------

DH, DW = 6, 5


def _decoder_inputs(seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((2, DH, DW, HIDDEN)).astype("float32") for _ in range(3)]


@functools.cache
def _decoder(kind, variant):
    keras.utils.set_random_seed(11)
    cls = OuterDecoder if kind == "outer" else InnerDecoder
    layer = cls(HIDDEN, 16, 2, 1, DH, DW, conditioning=VARIANTS[variant])
    emb, upper, z = _decoder_inputs(0)
    layer(emb, z) if kind == "outer" else layer(emb, upper, z)
    _randomise_tables(layer, np.random.default_rng(12))
    return layer


@pytest.mark.parametrize("variant", ["paper", "baseline"])
def test_outer_decoder_shifts_down_and_sees_only_rows_above(variant):
    layer = _decoder("outer", variant)
    emb, _, z = _decoder_inputs(1)
    out = _np(layer(emb, z))
    assert out.shape == (2, DH, DW, HIDDEN)
    assert_array_equal(out[:, 0], 0.0)
    assert np.abs(out[:, 1:]).min(axis=-1).max() > 0  # the other rows are not
    for r in range(DH):
        # A whole row, and a single pixel of it.
        for cols in (slice(None), slice(2, 3)) if r in (0, 2) else (slice(None),):
            emb2 = emb.copy()
            emb2[:, r, cols] += 3.0
            diff = np.abs(_np(layer(emb2, z)) - out).max(axis=-1)  # (B, H, W)
            assert diff[:, :r + 1].max() <= ATOL, f"row {r} leaks into rows <= {r}"
            if r < DH - 1:  # rows below see row r (spread by unmasked row attention)
                _assert_reaches(diff[:, r + 1:], f"row {r}")


@pytest.mark.parametrize("variant", ["paper", "baseline"])
def test_inner_decoder_sees_only_pixels_to_the_left(variant):
    layer = _decoder("inner", variant)
    emb, upper, z = _decoder_inputs(2)
    out = _np(layer(emb, upper, z))
    assert out.shape == (2, DH, DW, HIDDEN)
    for i, j in [(0, 0), (2, 1), (3, DW - 1), (DH - 1, 2)]:
        emb2 = emb.copy()
        emb2[:, i, j] += 3.0
        diff = np.abs(_np(layer(emb2, upper, z)) - out).max(axis=-1)  # (B, H, W)
        # Columns >= j of row i never matter at (i, j) ...
        assert diff[:, i, :j + 1].max() <= ATOL, f"({i}, {j}) leaks into its own row"
        # ... other rows never do (they come in through `upper`) ...
        others = np.delete(diff, i, axis=1)
        assert others.max() <= ATOL, f"({i}, {j}) leaks into other rows"
        # ... and the pixels to the right do see it.
        if j < DW - 1:
            _assert_reaches(diff[:, i, j + 1:], f"({i}, {j})")


@pytest.mark.parametrize("variant", ["paper", "baseline"])
def test_inner_decoder_uses_upper_context_of_its_own_row_only(variant):
    layer = _decoder("inner", variant)
    emb, upper, z = _decoder_inputs(3)
    out = _np(layer(emb, upper, z))
    i = 2
    upper2 = upper.copy()
    upper2[:, i] += 3.0
    diff = np.abs(_np(layer(emb, upper2, z)) - out).max(axis=-1)
    assert np.delete(diff, i, axis=1).max() <= ATOL
    _assert_reaches(diff[:, i], "upper")
