"""Each layer's incremental decoding equals its full call, layer by layer.

Stepping through a sequence with the layer's cache (a row at a time against
the rows above, or a pixel at a time against the pixels on the left) must
give what one call on the whole input gives at every position (the pattern
of keras-hub's cache tests). The samplers are tested end to end elsewhere;
here a wrong index, cache axis or conditioning in one layer fails by name.
"""

import numpy as np
import pytest
from keras import ops

from coltran_tf.layers import (
    AxialAttention,
    ConditionalFeedForward,
    DecoderAttentionBlock,
    DecoderMLPBlock,
    FeedForward,
    InnerDecoder,
    OuterDecoder,
)
from coltran_tf.layers.conditioning import BASELINE_CONDITIONING

B, H, W, D, C, HEADS = 2, 4, 5, 8, 6, 2
CONDITIONINGS = {"paper": None, "baseline": BASELINE_CONDITIONING}


def _x(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-4, atol=1e-5)


def _randomise(layer, seed=0):
    """Random values for every weight (zeros and ones at init hide mistakes)."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=0.3, size=weight.shape).astype(np.float32))


@pytest.mark.parametrize("conditional", [True, False])
def test_column_attention_row_by_row_with_its_cache_equals_the_full_call(conditional):
    layer = AxialAttention(D, HEADS, "column", H, mask="future", cond_q=conditional,
                           cond_k=conditional, cond_v=conditional)
    x, context = _x(1, B, H, W, D), _x(2, B, H, W, C)
    layer(x, context=context)
    _randomise(layer)
    full = layer(x, context=context)
    cache = layer.empty_cache(B, lines=W)
    for row in range(H):
        out, cache = layer(x[:, row:row + 1], context=context[:, row:row + 1], cache=cache,
                           cache_update_index=ops.convert_to_tensor(row), in_place=False)
        _close(out, full[:, row:row + 1])


@pytest.mark.parametrize("conditional", [True, False])
def test_row_attention_pixel_by_pixel_with_step_equals_the_full_call(conditional):
    layer = AxialAttention(D, HEADS, "row", W, mask="future", cond_q=conditional,
                           cond_k=conditional, cond_v=conditional)
    x, context = _x(3, B, 1, W, D), _x(4, B, 1, W, C)
    layer(x, context=context)
    _randomise(layer, 1)
    full = layer(x, context=context)
    constants, conditions = layer.step_constants(), layer.step_conditions(context)
    cache = layer.empty_cache(B)
    for col in range(W):
        out, cache = layer.step(x[:, 0, col], ops.convert_to_tensor(col), cache, constants,
                                conditions, in_place=False)
        _close(out, full[:, 0, col])


def test_feed_forward_steps_equal_the_full_call():
    plain = FeedForward(D, 16)
    x = _x(5, B, 1, W, D)
    _close(plain.step(x[:, 0, 2], 2), plain(x)[:, 0, 2])
    for mode in ("affine", "shift"):
        layer = ConditionalFeedForward(D, 16, mode, "sigmoid")
        context = _x(6, B, 1, W, C)
        full = layer(x, context)
        conditions = layer.step_conditions(context)
        for col in range(W):
            _close(layer.step(x[:, 0, col], col, conditions), full[:, 0, col])


@pytest.mark.parametrize("conditioning", sorted(CONDITIONINGS))
def test_decoder_blocks_decode_rows_and_pixels_as_their_full_call(conditioning):
    options = CONDITIONINGS[conditioning]
    x, context = _x(7, B, H, W, D), _x(8, B, H, W, D)
    column = DecoderAttentionBlock(D, HEADS, "column", "future", H, W, conditioning=options)
    row = DecoderAttentionBlock(D, HEADS, "row", "future", H, W, conditioning=options)
    mlp = DecoderMLPBlock(D, 16, H, W, conditioning=options)
    for block in (column, row, mlp):
        block(x, context=context, norm_context=context)
        _randomise(block, 2)

    # A row at a time (the outer decoder's way): rows above from the cache.
    for block in (column, mlp):
        full = block(x, context=context, norm_context=context)
        conditions, cache = block.norm_conditions(context), block.empty_cache(B, lines=W)
        for r in range(H):
            out, cache = block.decode_row(x[:, r:r + 1], context[:, r:r + 1],
                                          ops.convert_to_tensor(r), cache, conditions,
                                          in_place=False)
            _close(out, full[:, r:r + 1])

    # A pixel at a time (the inner decoder's way) along one row.
    one_row, row_context = x[:, :1], context[:, :1]
    for block in (row, mlp):
        full = block(one_row, context=row_context, norm_context=context)
        state = block.step_state(row_context, block.step_constants())
        conditions = block.norm_conditions(context)
        flat = None if conditions is None else tuple(t[:, 0, 0] for t in conditions)
        cache = block.empty_cache(B)
        for col in range(W):
            out, cache = block.step(one_row[:, 0, col], ops.convert_to_tensor(col), cache,
                                    state, flat, in_place=False)
            _close(out, full[:, 0, col])


@pytest.mark.parametrize("conditioning", sorted(CONDITIONINGS))
def test_outer_decoder_row_by_row_equals_its_full_call(conditioning):
    decoder = OuterDecoder(D, 16, HEADS, 2, H, W, conditioning=CONDITIONINGS[conditioning])
    embeddings, z = _x(9, B, H, W, D), _x(10, B, H, W, D)
    decoder(embeddings, z)
    _randomise(decoder, 3)
    full = decoder(embeddings, z)  # shifted down: row r + 1 is what row r gives
    caches, conditions = decoder.empty_caches(B), decoder.norm_conditions(z)
    for r in range(H - 1):
        out, caches = decoder.decode_row(embeddings[:, r:r + 1], z[:, r:r + 1],
                                         ops.convert_to_tensor(r), caches, conditions,
                                         in_place=False)
        _close(out, full[:, r + 1:r + 2])


@pytest.mark.parametrize("conditioning", sorted(CONDITIONINGS))
def test_inner_decoder_pixel_by_pixel_equals_its_full_call(conditioning):
    decoder = InnerDecoder(D, 16, HEADS, 2, H, W, conditioning=CONDITIONINGS[conditioning])
    embeddings, upper, z = _x(11, B, H, W, D), _x(12, B, H, W, D), _x(13, B, H, W, D)
    decoder(embeddings, upper, z)
    _randomise(decoder, 4)
    full = decoder(embeddings, upper, z)
    constants, conditions = decoder.step_constants(), decoder.norm_conditions(z)
    for r in range(H):
        row = ops.convert_to_tensor(r)
        state = decoder.start_row(z[:, r:r + 1], upper[:, r:r + 1], row, constants,
                                  conditions)
        caches, previous = decoder.empty_caches(B), np.zeros((B, D), np.float32)
        for col in range(W):
            out, caches = decoder.step(previous, ops.convert_to_tensor(col), caches, state,
                                       in_place=False)
            _close(out, full[:, r, col])
            previous = embeddings[:, r, col]
