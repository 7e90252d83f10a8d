"""The cached, incremental colorizer sampler.

Instead of re-running the inner decoder over the whole row for every pixel and
the outer decoder over the whole image for every row (the original sampler of
Kumar et al. 2021, Sec. 4), each new pixel and each new row is computed alone,
by the decoders' own decoding steps:

* Outer decoder, once per row (`OuterDecoder.decode_row`): its row attention
  only sees the row itself and its column attention (masked) only rows
  above, whose keys and values the layers keep in caches. Its output is the
  `upper` context of the next row.
* Inner decoder, once per pixel (`InnerDecoder.step`): its masked row
  attention only sees pixels on the left, whose keys and values are cached;
  the conditioning of attention and MLP is prepared once per row
  (`start_row`), the conditional LayerNorms' scale and shift once per image
  (in "reference" mode from the current row of z: once per row).
* The encoder runs once as a graph `tf.function`; all rows and pixels are one
  more `tf.function`, compiled by XLA by default: the pixel loop is a
  `tf.while_loop` inside the row loop and the caches are loop-carried tensors
  written in place — no Python and no op dispatch per pixel.

This module only orchestrates: the loops, the per-image uniforms and the
symbol choice (sampling/symbols.py). The returned `proba` is always the
model's own distribution (temperature 1, unfiltered), which is what the
exactness tests compare and what uncertainty maps show.
"""

import weakref

import numpy as np
import tensorflow as tf
from keras import ops

from coltran_tf.configs.sampler import DEFAULTS, NORM_CONTEXTS, SamplerOptions
from coltran_tf.layers.decoding import at, write
from coltran_tf.sampling import symbols
from coltran_tf.sampling.colorizer_sampler import sample_colorizer_loop
from coltran_tf.utils import image_ops


def _sample_row(model, z_row, upper_row, row, norm_conditions, uniforms_row, choose,
                constants, in_place):
    """One row, pixel by pixel: (symbols (B, W) int32, embeddings (B, 1, W, D),
    proba (B, W, N))."""
    inner = model.inner_decoder
    batch, width, hidden = tf.shape(z_row)[0], inner.width, inner.hidden_size
    row_state = inner.start_row(z_row, upper_row, row, constants, norm_conditions)
    uniforms_row = tf.transpose(uniforms_row)  # (W, B)

    def step(col, previous, caches, chosen, embeddings, probas):
        x, caches = inner.step(previous, col, caches, row_state, in_place)
        logits = model.final_logits(x)  # (B, N)
        proba = tf.nn.softmax(logits, axis=-1)
        symbol = choose(logits, proba, tf.gather(uniforms_row, col))
        embedding = model.pixel_embedding(symbol)  # (B, D)
        return (col + 1, embedding, caches, write(chosen, symbol, col, 1, in_place),
                write(embeddings, embedding, col, 1, in_place),
                write(probas, proba, col, 1, in_place))

    dtype = model.compute_dtype  # bfloat16 activations and caches in bfloat16
    # The outputs are loop-carried tensors written like the caches (not
    # TensorArrays: LiteRT cannot lower lists inside nested loops).
    initial = (tf.constant(0), tf.zeros((batch, hidden), dtype), inner.empty_caches(batch),
               tf.zeros((batch, width), tf.int32), tf.zeros((batch, width, hidden), dtype),
               tf.zeros((batch, width, model.num_symbols), tf.float32))
    *_, chosen, embeddings, probas = tf.while_loop(
        lambda col, *rest: col < width, step, initial, parallel_iterations=1)
    return chosen, embeddings[:, None], probas


def _sample(model, z, uniforms, in_place, mode, norm_context, temperature, top_k, top_p):
    """Rows and pixels of the images whose encoder output is z (B, H, W, D)."""
    batch = tf.shape(z)[0]
    _, height, width, hidden = z.shape
    outer, inner = model.outer_decoder, model.inner_decoder
    outer_norms = outer.norm_conditions(z)
    inner_norms_image = inner.norm_conditions(z)
    constants = inner.step_constants()

    def choose(logits, probs, uniform):
        return symbols.choose(logits, probs, uniform, mode, temperature, top_k, top_p)

    def row_step(row, upper, caches, chosen, probas):
        z_row = at(z, row, 1)
        inner_norms = (inner.norm_conditions(z_row) if norm_context == "reference"
                       else inner_norms_image)
        row_symbols, row_embeddings, row_proba = _sample_row(
            model, z_row, upper, row, inner_norms, at(uniforms, row, 1)[:, 0], choose,
            constants, in_place)
        # The last row's outer output is never used; computing it keeps the loop simple.
        upper, caches = outer.decode_row(row_embeddings, z_row, row, caches, outer_norms,
                                         in_place)
        return (row + 1, upper, caches, write(chosen, row_symbols, row, 1, in_place),
                write(probas, row_proba, row, 1, in_place))

    initial = (tf.constant(0), tf.zeros((batch, 1, width, hidden), model.compute_dtype),
               outer.empty_caches(batch), tf.zeros((batch, height, width), tf.int32),
               tf.zeros((batch, height, width, model.num_symbols), tf.float32))
    *_, chosen, probas = tf.while_loop(lambda row, *rest: row < height, row_step, initial,
                                       parallel_iterations=1)
    return {"symbols": chosen, "proba": probas}


def _encode(model, gray):
    """The encoder output z and, with a parallel head, its argmax symbols."""
    z = model.encode(gray)
    outputs = {"z": z}
    if model.has_parallel_head:
        outputs["parallel_symbols"] = tf.argmax(model.parallel_logits(z), axis=-1,
                                                output_type=tf.int32)
    return outputs


SEED_MODULUS = 2**31 - 1  # seeds enter the stateless generator as int32
_COMPILED = weakref.WeakKeyDictionary()  # model -> {"encode" | (mode, norm, jit): tf.function}


def _compiled(model, mode, norm_context, jit_compile):
    """The encoder as a plain graph (one pass of large matmuls, which TensorFlow's
    own kernels run ~15% faster than XLA:CPU here) and the row and pixel loops
    as one XLA computation (or a plain graph with jit_compile=False: the caches
    are then written by select instead of in place). Temperature, top-k and
    top-p are tensor arguments: one compilation serves every setting."""
    functions = _COMPILED.setdefault(model, {})
    key = (mode, norm_context, jit_compile)
    if key not in functions:
        def run(z, uniforms, temperature, top_k, top_p):
            return _sample(model, z, uniforms, jit_compile, mode, norm_context, temperature,
                           top_k, top_p)
        functions[key] = tf.function(run, jit_compile=jit_compile, reduce_retracing=True)
    if "encode" not in functions:
        functions["encode"] = tf.function(lambda gray: _encode(model, gray),
                                          reduce_retracing=True)
    return functions["encode"], functions[key]


def _controls(temperature, top_k, top_p):
    """The sampling controls as the compiled loop's scalar tensor arguments."""
    return (tf.cast(temperature, tf.float32), tf.cast(top_k, tf.int32),
            tf.cast(top_p, tf.float32))


def _uniforms(model, seeds):
    """(B,) int64 seeds -> (B, R, R) per-pixel uniforms (symbols.pixel_uniforms)."""
    return symbols.pixel_uniforms(tf.cast(tf.math.floormod(seeds, SEED_MODULUS), tf.int32),
                                  model.resolution, model.resolution)


def _sample_images(model, gray, uniforms, controls, mode, norm_context, jit_compile):
    """{"symbols", "proba", ["parallel_symbols"]} tensors for (B, R, R, 1) int32 gray
    and (B, R, R) uniforms: the encoder, then the loops."""
    encode, sample = _compiled(model, mode, norm_context, jit_compile)
    outputs = encode(gray)
    outputs.update(sample(outputs.pop("z"), uniforms, *controls))
    return outputs


def serving_sampler(model, norm_context: str = "exact", jit_compile: bool = True,
                    seeded: bool = True):
    """The cached sampler as a function of tensors only, for an exported signature:

      gray (B, R, R, 1) int32 in [0, 255], seeds (B,) int64 (seeded=False:
      uniforms (B, R, R) float32 in [0, 1), one per pixel, what
      pixel_uniforms makes of the seeds), temperature () float32 > 0, top_k ()
      int32 in [0, 512] (0: off), top_p () float32 in (0, 1] (1: off)
      -> coarse (B, R, R, 3) uint8 (the 3-bit colours dequantised as x * 32,
      what colorize's auto_sample is), proba (B, R, R, 512) float32 (the
      model's own distribution, as sample_colorizer_cached returns it).

    Same seeds (or their uniforms) and controls, same samples as
    sample_colorizer_cached. Controls out of range fail with an
    InvalidArgumentError that names them. jit_compile=False: the plain-graph
    loop (cache writes by select), for converters that cannot take XLA's
    in-place writes; seeded=False for runtimes without TensorFlow's stateless
    random generator.
    """
    num_symbols = model.num_symbols

    def serve(gray, noise, temperature, top_k, top_p):
        checks = [
            tf.debugging.assert_equal(tf.shape(noise)[0], tf.shape(gray)[0], message=(
                "seeds must hold one seed per image" if seeded else
                "uniforms must hold one (R, R) array per image")),
            tf.debugging.assert_positive(temperature, message="temperature must be > 0"),
            tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0 (0: off)"),
            tf.debugging.assert_less_equal(top_k, num_symbols,
                                           message=f"top_k must be <= {num_symbols}"),
            tf.debugging.assert_positive(top_p, message="top_p must be in (0, 1]"),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1]")]
        with tf.control_dependencies(checks):
            gray = tf.identity(gray)
        uniforms = _uniforms(model, noise) if seeded else noise
        outputs = _sample_images(model, gray, uniforms, (temperature, top_k, top_p), "sample",
                                 norm_context, jit_compile)
        return {"coarse": image_ops.coarse_symbols_to_rgb(outputs["symbols"]),
                "proba": outputs["proba"]}

    return serve


def seed_uniforms(model, seeds) -> np.ndarray:
    """(B, R, R) float32 uniforms of (B,) seeds: the input an unseeded export
    (serving_sampler(seeded=False)) takes to draw what the seeds draw."""
    return np.asarray(_uniforms(model, tf.constant(np.asarray(seeds, np.int64))))


def _seeds(seeds, batch: int) -> np.ndarray:
    if seeds is None:
        seeds = np.random.randint(0, SEED_MODULUS, size=batch)
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    if seeds.size == 1:
        seeds = seeds[0] + np.arange(batch)
    if seeds.size != batch:
        raise ValueError(f"{seeds.size} seeds for {batch} images.")
    return seeds


def sample_colorizer_cached(model, gray, mode: str = "sample",
                            norm_context: str = DEFAULTS.norm_context,
                            seeds=None, temperature: float = DEFAULTS.temperature,
                            top_k: int = DEFAULTS.top_k, top_p: float = DEFAULTS.top_p,
                            jit_compile: bool = True) -> dict:
    """Samples coarse colours for grayscale images with key/value caches.

    Args:
      model: a built ColTranCore.
      gray: (B, R, R, 1) int grayscale.
      mode: "argmax" or "sample".
      norm_context: "exact" (training-consistent) or "reference" (the original
        sampler's quirk, see colorizer_sampler).
      seeds: one int per image (or one int for all: seed + b for image b);
        None draws random ones. Image b's sample depends only on seeds[b].
      temperature, top_k, top_p: reshape the distribution sampled from
        (0 / 1.0 switch top-k / top-p off).
      jit_compile: compile the whole loop with XLA (default: in-place cache
        writes, no per-op dispatch). False runs it as a plain TensorFlow graph
        (cache writes by select, much slower; for debugging or without XLA).

    Returns:
      NumPy arrays: {"coarse" (B, R, R, 3) coarse colours (also under the
      original's name "auto_<mode>"), "symbols",
      "proba" (B, R, R, 512), "uncertainty" (B, R, R) = the per-pixel max of
      proba, and with a parallel head "parallel"}.
    """
    symbols.check_options(mode, temperature, top_k, top_p, model.num_symbols)
    if norm_context not in NORM_CONTEXTS:
        raise ValueError(f"norm_context={norm_context!r} is not supported; "
                         f"choose one of {NORM_CONTEXTS}.")
    gray = tf.convert_to_tensor(gray, tf.int32)
    res = model.resolution
    if tuple(gray.shape[1:]) != (res, res, 1):
        raise ValueError(f"Expected grayscale images of shape (B, {res}, {res}, 1), "
                         f"got {tuple(gray.shape)}.")
    uniforms = _uniforms(model, tf.constant(_seeds(seeds, gray.shape[0])))
    outputs = _sample_images(model, gray, uniforms, _controls(temperature, top_k, top_p), mode,
                             norm_context, bool(jit_compile))
    coarse = image_ops.coarse_symbols_to_rgb(outputs["symbols"])
    result = {"coarse": coarse, f"auto_{mode}": coarse,  # the original's name too
              "symbols": outputs["symbols"], "proba": outputs["proba"],
              "uncertainty": ops.max(outputs["proba"], axis=-1)}
    if "parallel_symbols" in outputs:
        result["parallel"] = image_ops.coarse_symbols_to_rgb(outputs["parallel_symbols"])
    return {key: np.asarray(value) for key, value in result.items()}


def sample_colorizer(model, gray, mode: str = "sample", seeds=None,
                     options: SamplerOptions = DEFAULTS) -> dict:
    """Coarse colours of grayscale images: the entry point to the colorizer's samplers.

    Args:
      model: a built ColTranCore.
      gray: (B, R, R, 1) int grayscale.
      mode: "sample" or "argmax".
      seeds: one per image (image b's sample depends on seeds[b] only), one
        for all (seed + b), or None (random).
      options: which sampler and how it samples (SamplerOptions). The "loop"
        sampler (the original algorithm) takes one seed for the batch (the
        first).

    Returns:
      See sample_colorizer_cached; both samplers return the same keys.
    """
    if options.sampler == "loop":
        seeds = _seeds(seeds, int(np.shape(gray)[0]))
        out = sample_colorizer_loop(model, gray, mode=mode, norm_context=options.norm_context,
                                    seed=int(seeds[0]))
        out["uncertainty"] = out["proba"].max(-1)
        return out
    return sample_colorizer_cached(
        model, gray, mode=mode, norm_context=options.norm_context, seeds=seeds,
        temperature=options.temperature, top_k=options.top_k, top_p=options.top_p)
