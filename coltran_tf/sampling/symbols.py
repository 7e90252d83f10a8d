"""Choosing each pixel's symbol from the colorizer's logits.

Sampling draws by inverse CDF from one uniform number per pixel, generated per
image from that image's seed, so an image's sample depends on its seed only,
not on what else is in the batch. Temperature, top-k and top-p reshape the
distribution drawn from; argmax takes the most likely symbol.
"""

import numpy as np
import tensorflow as tf

from coltran_tf.configs.sampler import DEFAULTS
from coltran_tf.utils.image_ops import NUM_COARSE_SYMBOLS

SAMPLE_MODES = ("argmax", "sample")
SEED_SALT = 0x5EED  # second word of every pixel-uniform stateless seed


def filtered_probabilities(logits, temperature=DEFAULTS.temperature, top_k=DEFAULTS.top_k,
                           top_p=DEFAULTS.top_p):
    """(B, N) softmax of logits / temperature, restricted to the top-k symbols
    (0: all) and to the top-p nucleus (1: all), renormalised.

    The controls may be Python numbers or scalar tensors (one compiled sampler
    serves every setting; an exported signature takes them as inputs).
    """
    n = logits.shape[-1]
    logits = logits / tf.cast(temperature, logits.dtype)
    top_k = tf.cast(top_k, tf.int32)
    # The k-th largest logit (k = 0: all N, the smallest, which masks nothing).
    ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
    kth = tf.gather(ordered, tf.where(top_k > 0, top_k, n) - 1, axis=-1)[:, None]
    logits = tf.where(logits < kth, tf.constant(-np.inf, logits.dtype), logits)
    probs = tf.nn.softmax(logits, axis=-1)
    top_p = tf.cast(top_p, probs.dtype)

    def nucleus():
        ordered = tf.sort(probs, axis=-1, direction="DESCENDING")
        before = tf.cumsum(ordered, axis=-1, exclusive=True)
        # The smallest set of most likely symbols whose mass reaches top_p: a
        # symbol stays if the mass of the more likely ones is below top_p.
        kept = tf.where(before < top_p, ordered, tf.ones_like(ordered))
        threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
        inside = tf.where(probs >= threshold, probs, tf.zeros_like(probs))
        return inside / tf.reduce_sum(inside, axis=-1, keepdims=True)

    return tf.cond(top_p < 1.0, nucleus, lambda: probs)


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


def choose(logits, probs, uniform, mode: str, temperature=DEFAULTS.temperature,
           top_k=DEFAULTS.top_k, top_p=DEFAULTS.top_p):
    """(B, N) logits, their softmax and (B,) uniforms in [0, 1) -> (B,) int32 symbols.

    "sample": the symbol whose CDF interval holds the uniform number, under the
    (filtered) distribution; never a symbol of zero probability (rounding at
    the top of the CDF falls back to the most likely one). "argmax": the most
    likely symbol of the logits. The controls may be scalar tensors; with
    their defaults (1, 0, 1) `probs` is sampled from as given.
    """
    if mode == "argmax":
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    reshaped = tf.logical_or(tf.not_equal(tf.cast(temperature, tf.float32), 1.0),
                             tf.logical_or(tf.cast(top_k, tf.int32) > 0,
                                           tf.cast(top_p, tf.float32) < 1.0))
    given = probs
    probs = tf.cond(reshaped, lambda: filtered_probabilities(logits, temperature, top_k, top_p),
                    lambda: given)
    cdf = blocked_cumsum(probs)
    index = tf.reduce_sum(tf.cast(cdf <= uniform[:, None] * cdf[:, -1:], tf.int32), axis=-1)
    index = tf.minimum(index, probs.shape[-1] - 1)
    allowed = tf.gather(probs, index, batch_dims=1) > 0
    fallback = tf.argmax(probs, axis=-1, output_type=tf.int32)
    return tf.where(allowed, index, fallback)


def pixel_uniforms(seeds, height: int, width: int):
    """(B, H, W) uniforms in [0, 1), image b's from its own seed seeds[b] (B int32
    seeds; B may be unknown until run time)."""
    def one(seed):
        return tf.random.stateless_uniform([height, width], seed=tf.stack([seed, SEED_SALT]))

    return tf.map_fn(one, tf.cast(seeds, tf.int32),
                     fn_output_signature=tf.TensorSpec([height, width], tf.float32))


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
