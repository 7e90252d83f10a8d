"""Choosing each pixel's symbol from the colorizer's logits.

Sampling draws by inverse CDF from one uniform number per pixel, generated per
image from that image's seed, so an image's sample depends on its seed only,
not on what else is in the batch. Temperature, top-k and top-p reshape the
distribution drawn from; argmax takes the most likely symbol.
"""

import numpy as np
import tensorflow as tf

from coltran_tf.utils.image_ops import NUM_COARSE_SYMBOLS

SAMPLE_MODES = ("argmax", "sample")
SEED_SALT = 0x5EED  # second word of every pixel-uniform stateless seed


def filtered_probabilities(logits, temperature: float = 1.0, top_k: int = 0,
                           top_p: float = 1.0):
    """(B, N) softmax of logits / temperature, restricted to the top-k symbols
    (0: all) and to the top-p nucleus (1: all), renormalised."""
    logits = logits / temperature
    if top_k:
        kth = tf.math.top_k(logits, k=top_k).values[:, -1:]
        logits = tf.where(logits < kth, tf.constant(-np.inf, logits.dtype), logits)
    probs = tf.nn.softmax(logits, axis=-1)
    if top_p < 1.0:
        ordered = tf.sort(probs, axis=-1, direction="DESCENDING")
        before = tf.cumsum(ordered, axis=-1, exclusive=True)
        # The smallest set of most likely symbols whose mass reaches top_p: a
        # symbol stays if the mass of the more likely ones is below top_p.
        kept = tf.where(before < top_p, ordered, tf.ones_like(ordered))
        threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
        probs = tf.where(probs >= threshold, probs, tf.zeros_like(probs))
        probs = probs / tf.reduce_sum(probs, axis=-1, keepdims=True)
    return probs


def blocked_cumsum(probs, block: int = 16):
    """Inclusive cumulative sum over (B, N): within blocks, then over block sums
    (XLA's cumsum is quadratic in N; this is ~N * (block + N / block))."""
    batch, n = tf.shape(probs)[0], probs.shape[-1]
    if n % block:
        return tf.cumsum(probs, axis=-1)
    blocks = tf.reshape(probs, [batch, n // block, block])
    within = tf.cumsum(blocks, axis=-1)
    before = tf.cumsum(within[..., -1], axis=-1, exclusive=True)
    return tf.reshape(within + before[..., None], [batch, n])


def choose(logits, probs, uniform, mode: str, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0):
    """(B, N) logits, their softmax and (B,) uniforms in [0, 1) -> (B,) int32 symbols.

    "sample": the symbol whose CDF interval holds the uniform number, under the
    (filtered) distribution; never a symbol of zero probability (rounding at
    the top of the CDF falls back to the most likely one). "argmax": the most
    likely symbol of the logits.
    """
    if mode == "argmax":
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    if temperature != 1.0 or top_k or top_p < 1.0:
        probs = filtered_probabilities(logits, temperature, top_k, top_p)
    cdf = blocked_cumsum(probs)
    index = tf.reduce_sum(tf.cast(cdf <= uniform[:, None] * cdf[:, -1:], tf.int32), axis=-1)
    index = tf.minimum(index, probs.shape[-1] - 1)
    allowed = tf.gather(probs, index, batch_dims=1) > 0
    fallback = tf.argmax(probs, axis=-1, output_type=tf.int32)
    return tf.where(allowed, index, fallback)


def pixel_uniforms(seeds, height: int, width: int):
    """(B, H, W) uniforms in [0, 1), image b's from its own seed seeds[b]."""
    return tf.stack([tf.random.stateless_uniform([height, width], seed=[s, SEED_SALT])
                     for s in tf.unstack(seeds)])


def check_options(mode: str, temperature: float, top_k: int, top_p: float,
                  num_symbols: int = NUM_COARSE_SYMBOLS) -> None:
    """ValueError naming the option that is out of range."""
    if mode not in SAMPLE_MODES:
        raise ValueError(f"mode={mode!r} is not supported; choose one of {SAMPLE_MODES}.")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0.")
    if not 0 <= int(top_k) <= num_symbols:
        raise ValueError(f"top_k={top_k} must be in [0, {num_symbols}] (0: off).")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p} must be in (0, 1] (1: off).")
