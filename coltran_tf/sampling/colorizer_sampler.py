"""The original colorizer sampling algorithm, as one compiled loop.

It follows the original implementation of Kumar et al. (2021): the encoder
once; for every row, the inner decoder over the whole row once per pixel; after
every row, the outer decoder
over the whole image. The loop is one compiled `tf.function` (no per-pixel
Python dispatch), but its work is that of the original, about W times the
necessary inner-decoder work and H times the outer-decoder work. It is the
correctness baseline for faster samplers.

Two behaviours of the inner decoder's conditional LayerNorms:
  * "exact": they pool the whole grayscale context z, as in training, so the
    per-pixel probabilities equal the teacher-forced ones on the sample.
  * "reference": they pool only the current row of z (broadcast against the
    (H, W) pooling weights), reproducing the original sampler bit for bit.
"""

import weakref

import numpy as np
import tensorflow as tf
from keras import ops

from coltran_tf.configs.sampler import NORM_CONTEXTS
from coltran_tf.sampling.symbols import SAMPLE_MODES
from coltran_tf.utils import image_ops


def _check(mode, norm_context):
    if mode not in SAMPLE_MODES:
        raise ValueError(f"mode={mode!r} is not supported; choose one of {SAMPLE_MODES}.")
    if norm_context not in NORM_CONTEXTS:
        raise ValueError(f"norm_context={norm_context!r} is not supported; "
                         f"choose one of {NORM_CONTEXTS}.")


def _choose(logits, mode, seed, row, col):
    """(B, 512) logits -> (B,) int32 symbols."""
    if mode == "argmax":
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    pixel_seed = tf.stack([seed[0] + row * 65536 + col, seed[1]])
    picked = tf.random.stateless_categorical(logits, 1, pixel_seed, dtype=tf.int32)
    return picked[:, 0]


def _sample_row(model, z, upper, row, mode, norm_context, seed):
    """Samples one row: (B, W) symbols, (B, W, D) embeddings, (B, W, 512) proba."""
    batch, (_, _, width, hidden) = tf.shape(z)[0], z.shape
    z_row, upper_row = z[:, row:row + 1], upper[:, row:row + 1]
    cln_context = z_row if norm_context == "reference" else z
    dtype = model.compute_dtype
    row_embeddings = tf.zeros((batch, 1, width, hidden), dtype)
    symbols = tf.TensorArray(tf.int32, size=width)
    probas = tf.TensorArray(tf.float32, size=width)
    for col in tf.range(width):
        activations = model.inner_decoder(row_embeddings, upper_row, z_row,
                                          norm_context=cln_context, row=row)
        logits = model.final_logits(activations[:, 0, col])
        symbol = _choose(logits, mode, seed, row, col)
        embedding = model.pixel_embedding(symbol)
        # Writing into zeros through a one-hot is exact and traceable.
        at_col = tf.one_hot(col, width, dtype=dtype)[None, None, :, None]
        row_embeddings = row_embeddings + at_col * embedding[:, None, None, :]
        symbols = symbols.write(col, symbol)
        probas = probas.write(col, tf.nn.softmax(logits, axis=-1))
    return (tf.transpose(symbols.stack()), row_embeddings,
            tf.transpose(probas.stack(), [1, 0, 2]))


def _sample_loop(model, z, mode, norm_context, seed, num_rows=None):
    batch, (_, height, width, hidden) = tf.shape(z)[0], z.shape
    num_rows = height if num_rows is None else num_rows
    dtype = model.compute_dtype
    canvas = tf.zeros((batch, height, width, hidden), dtype)
    upper = tf.zeros((batch, height, width, hidden), dtype)
    symbols = tf.TensorArray(tf.int32, size=num_rows)
    probas = tf.TensorArray(tf.float32, size=num_rows)
    for row in tf.range(num_rows):
        row_symbols, row_embeddings, row_proba = _sample_row(
            model, z, upper, row, mode, norm_context, seed)
        canvas = canvas + tf.one_hot(row, height, dtype=dtype)[None, :, None, None] * row_embeddings
        upper = model.outer_decoder(canvas, z)
        symbols = symbols.write(row, row_symbols)
        probas = probas.write(row, row_proba)
    return (tf.transpose(symbols.stack(), [1, 0, 2]),
            tf.transpose(probas.stack(), [1, 0, 2, 3]))


_COMPILED = weakref.WeakKeyDictionary()  # model -> {(mode, norm_context): tf.function}


def _compiled(model, mode, norm_context, num_rows=None):
    functions = _COMPILED.setdefault(model, {})
    if (mode, norm_context, num_rows) not in functions:
        def run(gray, seed):
            z = model.encode(gray)
            symbols, proba = _sample_loop(model, z, mode, norm_context, seed, num_rows)
            outputs = {"symbols": symbols, "proba": proba}
            if model.has_parallel_head:
                parallel = ops.argmax(model.parallel_logits(z), axis=-1)
                outputs["parallel_symbols"] = ops.cast(parallel, "int32")
            return outputs
        functions[mode, norm_context, num_rows] = tf.function(run, reduce_retracing=True)
    return functions[mode, norm_context, num_rows]


def sample_colorizer_loop(model, gray, mode: str = "argmax", norm_context: str = "exact",
                          seed: int | None = None, num_rows: int | None = None) -> dict:
    """Samples coarse colours for grayscale images with the original algorithm
    (minutes per image at paper size; `sampling.sample_colorizer` is the fast
    entry point).

    Args:
      model: a built ColTranCore.
      gray: (B, R, R, 1) int grayscale (R = model.resolution).
      mode: "argmax" or "sample" (categorical).
      norm_context: "exact" or "reference" (see the module docstring).
      seed: for mode "sample"; the same seed gives the same image.
      num_rows: sample only the first rows (benchmarks time a few rows of this
        slow loop); the outputs then hold only those rows.

    Returns:
      NumPy arrays: {"auto_<mode>": (B, R, R, 3) uint8 coarse RGB (x*32), "symbols": (B, R, R)
      int32, "proba": (B, R, R, 512) per-pixel probabilities, and with a
      parallel head "parallel": (B, R, R, 3) uint8}.
    """
    _check(mode, norm_context)
    gray = tf.convert_to_tensor(gray, tf.int32)
    res = model.resolution
    if tuple(gray.shape[1:]) != (res, res, 1):
        raise ValueError(f"Expected grayscale images of shape (B, {res}, {res}, 1), "
                         f"got {tuple(gray.shape)}.")
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    seed_tensor = tf.constant([seed, 0], tf.int32)
    outputs = _compiled(model, mode, norm_context, num_rows)(gray, seed_tensor)
    coarse = image_ops.coarse_symbols_to_rgb(outputs["symbols"])
    result = {"coarse": coarse, f"auto_{mode}": coarse,  # the original's name too
              "symbols": outputs["symbols"], "proba": outputs["proba"]}
    if "parallel_symbols" in outputs:
        result["parallel"] = image_ops.coarse_symbols_to_rgb(outputs["parallel_symbols"])
    return {key: np.asarray(value) for key, value in result.items()}
