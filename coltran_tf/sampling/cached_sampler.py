"""The cached, incremental colorizer sampler (spec COLTRAN.md §5).

Instead of re-running the inner decoder over the whole row for every pixel and
the outer decoder over the whole image for every row, each new pixel and each
new row is computed alone:

* Outer decoder, once per row: its row attention only sees the row itself and
  its column attention (masked) only rows above, so the keys and values of the
  finished rows are kept in per-layer caches (B, W, heads, H, depth) and the new
  row attends to them. Its output is the `upper` context of the next row.
* Inner decoder, once per pixel: its masked row attention only sees pixels on
  the left, whose keys and values are cached per layer (B, heads, W, depth).
  The conditioning projections of attention and MLP depend on (z, upper) of
  the row, so they are computed once per row; the conditional LayerNorms'
  scale and shift depend on z only (pooled over the image: once per image; in
  "reference" mode over the current row of z: once per row).
* The encoder runs once as a graph `tf.function`; all rows and pixels are one
  more `tf.function`, compiled by XLA by default: the pixel loop is a
  `tf.while_loop` inside the row loop and the caches are loop-carried tensors
  written by dynamic-update-slice (in place) and read by batched matmuls — no
  Python and no op dispatch per pixel.

Sampling draws every pixel by inverse CDF from one uniform number per pixel,
generated per image from that image's seed, so an image's sample depends on
its seed only, not on what else is in the batch. Temperature, top-k and top-p
reshape the distribution it is drawn from; the returned `proba` is always the
model's own distribution (temperature 1, unfiltered), which is what the
exactness tests compare and what uncertainty maps show.
"""

import weakref

import numpy as np
import tensorflow as tf
from keras import ops
from tensorflow.compiler.tf2xla.python import xla  # dynamic_update_slice

from coltran_tf.sampling.colorizer_sampler import NORM_CONTEXTS, SAMPLE_MODES, sample_colorizer
from coltran_tf.utils import image_ops

NUM_SYMBOLS = 512


# -- choosing a symbol -------------------------------------------------------------

def _filtered_probabilities(logits, temperature, top_k, top_p):
    """Softmax of logits / T restricted to the top-k and the top-p nucleus."""
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


def _cumsum(probs, block=16):
    """Inclusive cumulative sum over (B, N): within blocks, then over block sums
    (XLA's cumsum is quadratic in N; this is ~N * (block + N / block))."""
    batch, n = tf.shape(probs)[0], probs.shape[-1]
    blocks = tf.reshape(probs, [batch, n // block, block])
    within = tf.cumsum(blocks, axis=-1)
    before = tf.cumsum(within[..., -1], axis=-1, exclusive=True)
    return tf.reshape(within + before[..., None], [batch, n])


def _choose(logits, probs, uniform, mode, temperature, top_k, top_p):
    """(B, 512) logits, their softmax and (B,) uniforms -> (B,) int32 symbols."""
    if mode == "argmax":
        return tf.argmax(logits, axis=-1, output_type=tf.int32)
    if temperature != 1.0 or top_k or top_p < 1.0:
        probs = _filtered_probabilities(logits, temperature, top_k, top_p)
    cdf = _cumsum(probs)
    index = tf.reduce_sum(tf.cast(cdf <= uniform[:, None] * cdf[:, -1:], tf.int32), axis=-1)
    # Never land on a symbol of zero probability (rounding at the top of the CDF).
    index = tf.minimum(index, NUM_SYMBOLS - 1)
    allowed = tf.gather(probs, index, batch_dims=1) > 0
    fallback = tf.argmax(probs, axis=-1, output_type=tf.int32)
    return tf.where(allowed, index, fallback)


def pixel_uniforms(seeds, height, width):
    """(B, H, W) uniforms in [0, 1), image b's from its own seed seeds[b]."""
    return tf.stack([tf.random.stateless_uniform([height, width], seed=[s, 0x5EED])
                     for s in tf.unstack(seeds)])


# -- the decoders, one row / one pixel at a time ---------------------------------------

def _at(tensor, index, axis):
    """tensor[..., index:index+1, ...] along `axis` for a scalar tensor index."""
    return tf.gather(tensor, index[None], axis=axis)


def _norm_conditions(block, context):
    """Scale and shift of a block's conditional LayerNorm (None if it has none)."""
    return block.residual.norm.condition(context) if block.residual.conditional else None


def _write_xla(cache, update, index, axis: int):
    """cache with position `index` of `axis` set to update (which lacks that axis),
    as an XLA dynamic-update-slice: in place inside compiled loops."""
    start = tf.one_hot(axis, len(cache.shape), dtype=index.dtype) * index
    return xla.dynamic_update_slice(cache, tf.expand_dims(update, axis), start)


def _write_select(cache, update, index, axis: int):
    """The same without XLA (a select over the whole cache; for jit_compile=False)."""
    shape = [1] * len(cache.shape)
    shape[axis] = cache.shape[axis]
    mask = tf.reshape(tf.equal(tf.range(cache.shape[axis]), index), shape)
    return tf.where(mask, tf.expand_dims(update, axis), cache)


def _outer_row(model, embeddings, z_row, row, caches, norm_conditions, write):
    """Outer decoder on row `row`: (B, 1, W, D) -> ((B, 1, W, D), new caches).

    caches: per column-attention block, (keys, values) of shape
    (B, W, heads, H, depth); row `row` is written and the row attends to rows
    <= `row` (later ones hold zeros and are masked).
    """
    outer = model.outer_decoder
    height = outer.height
    x = outer.position_embedding(embeddings, row=row)
    x = x + z_row if outer.skip else x
    cache_index, updated = 0, []
    for block, conditions in zip(outer.blocks, norm_conditions):
        if hasattr(block, "attention"):
            att = block.attention
            q, k, v = att.project(x, context=z_row)  # (B, 1, W, h, e)
            if att.axis == "row":
                y = att.attend(q, k, v)
            else:  # column attention over the rows so far, through the cache
                keys, values = caches[cache_index]
                cache_index += 1
                keys, values = write(keys, k[:, 0], row, 3), write(values, v[:, 0], row, 3)
                updated.append((keys, values))
                bias = att.position_bias(1, height, row)[:, 0]  # (h, H)
                logits = tf.matmul(q[:, 0, :, :, None], keys, transpose_b=True)  # (B,W,h,1,H)
                weights = tf.nn.softmax(logits + bias[:, None], axis=-1)
                y = tf.matmul(weights, values)[:, None, :, :, 0]  # (B, 1, W, h, e)
            y = att.output_projection(y)
        else:
            y = block.mlp(x, z_row) if block.is_conditional else block.mlp(x)
        x = block.residual(x, y, conditions=conditions)
    return x, updated


def _flat(tensor):
    """(B, 1, W, ...) -> (W, B, prod(...)): per-column slices are then one gather."""
    shape = tf.shape(tensor)
    flat = tf.reshape(tensor, [shape[0], shape[2], -1])
    return tf.transpose(flat, [1, 0, 2])


def _attention_step_constants(att):
    """Per-image tensors of one inner attention block for flat (B, D) pixel steps:
    (q|k|v kernel (D, 3D), output kernel (D, D), bias (Wq, heads, 1, Wk) = the
    relative position bias plus the future mask of each query column)."""
    hidden, width = att.hidden_size, att.length
    kernel = tf.concat([tf.reshape(getattr(att, w).kernel, [hidden, hidden])
                        for w in ("q", "k", "v")], axis=1)
    output = tf.reshape(att.output_projection.kernel, [hidden, hidden])
    bias = att.position_bias(width, width)  # (h, Wq, Wk)
    return kernel, output, tf.transpose(bias, [1, 0, 2])[:, :, None]


def _attention_step_conditions(att, context):
    """Per-row (scale, shift), each (W, B, 3D), of one inner attention block such
    that q|k|v = (x @ kernel) * scale + shift, with the conditioning and q's
    depth^-0.5 folded in."""
    hidden = att.hidden_size
    conditions = att.condition(context) if att.is_conditional else {}
    scales, shifts = [], []
    ones = tf.ones_like(_flat(context)[..., :hidden])
    for which in ("q", "k", "v"):
        factor = att.depth**-0.5 if which == "q" else 1.0
        if which not in conditions:
            scale, shift = ones, tf.zeros_like(ones)
        elif att.cond_scale:
            scale, shift = tf.split(conditions[which], 2, axis=-1)
            scale, shift = _flat(att._act(scale)), _flat(att._act(shift))
        else:
            scale, shift = ones, _flat(conditions[which])
        scales.append(scale * factor)
        shifts.append(shift * factor)
    return tf.concat(scales, -1), tf.concat(shifts, -1)


def _mlp_step_weights(block, context):
    """(scale, shift) of a conditional inner MLP, each (W, B, D); None if plain."""
    if not block.is_conditional:
        return None
    mlp = block.mlp
    cond = _flat(mlp.cond(context))
    if mlp.mode == "shift":
        return None, cond
    shift, scale = tf.split(cond, 2, axis=-1)  # shift first, unlike attention
    return mlp._act(scale), mlp._act(shift)


def _flat_norm(conditions):
    """(B, 1, 1, D) conditional-norm scale/shift -> (B, D) (None stays None)."""
    return None if conditions is None else tuple(t[:, 0, 0] for t in conditions)


def _inner_row(model, z_row, upper_row, row, norm_conditions, uniforms_row, choose, constants,
               write):
    """Samples one row pixel by pixel, on flat (B, D) pixel tensors.

    The per-pixel step is written with the layers' weights directly (one fused
    q|k|v matmul; key/value caches (B, heads, W, depth) carried through the
    loop, written at the pixel's column, entries right of it masked;
    conditioning gathered from per-row tensors) to keep it to few kernels.
    `constants` are `_attention_step_constants` per attention block.

    Returns (symbols (B, W) int32, embeddings (B, 1, W, D), proba (B, W, 512)).
    """
    inner = model.inner_decoder
    batch = tf.shape(z_row)[0]
    width, hidden = inner.width, inner.hidden_size
    heads, depth = inner.num_heads, hidden // inner.num_heads
    context = tf.concat([z_row, upper_row], axis=-1)  # (B, 1, W, 2D)
    blocks, constants = [], iter(constants)
    for block in inner.blocks:
        if hasattr(block, "attention"):
            kernel, output, bias = next(constants)
            scale, shift = _attention_step_conditions(block.attention, context)
            blocks.append(("attention", block, (kernel, scale, shift, output), bias))
        else:
            blocks.append(("mlp", block, _mlp_step_weights(block, context), None))
    norms = [_flat_norm(conditions) for conditions in norm_conditions]
    position = inner.position_embedding
    offsets = _flat(tf.broadcast_to(
        tf.gather(position.row_embedding, row) + position.column_embedding,
        [1, 1, width, hidden]))  # (W, 1, D)
    if inner.skip:
        offsets = offsets + _flat(z_row + upper_row)  # (W, B, D)
    embedding_table = model.pixel_embedding.kernel
    uniforms_row = tf.transpose(uniforms_row)  # (W, B)

    def step(col, previous, caches, symbols, embeddings, probas):
        x = previous + tf.gather(offsets, col)  # (B, D)
        a, updated = 0, []
        for (kind, block, weights, bias), conditions in zip(blocks, norms):
            if kind == "attention":
                kernel, scale, shift, output = weights
                qkv = tf.matmul(x, kernel) * tf.gather(scale, col) + tf.gather(shift, col)
                q, k, v = (tf.reshape(t, [-1, heads, depth]) for t in tf.split(qkv, 3, -1))
                keys = write(caches[2 * a], k, col, 2)
                values = write(caches[2 * a + 1], v, col, 2)
                updated += [keys, values]
                a += 1
                logits = tf.matmul(q[:, :, None], keys, transpose_b=True) + tf.gather(bias, col)
                attended = tf.matmul(tf.nn.softmax(logits, axis=-1), values)
                y = tf.matmul(tf.reshape(attended, [-1, hidden]), output)
            else:
                y = block.mlp.mlp(x) if block.is_conditional else block.mlp(x)
                if weights is not None:
                    scale, shift = weights
                    y = y + tf.gather(shift, col) if scale is None else (
                        y * tf.gather(scale, col) + tf.gather(shift, col))
            x = block.residual(x, y, conditions=conditions)
        logits = model.final_logits(x)  # (B, 512)
        proba = tf.nn.softmax(logits, axis=-1)
        symbol = choose(logits, proba, tf.gather(uniforms_row, col))
        embedding = tf.gather(embedding_table, symbol)  # (B, D), = one_hot @ kernel
        return (col + 1, embedding, updated, symbols.write(col, symbol),
                embeddings.write(col, embedding), probas.write(col, proba))

    caches = [tf.zeros((batch, heads, width, depth))
              for kind, *_ in blocks if kind == "attention" for _ in range(2)]
    initial = (tf.constant(0), tf.zeros((batch, hidden)), caches,
               tf.TensorArray(tf.int32, size=width), tf.TensorArray(tf.float32, size=width),
               tf.TensorArray(tf.float32, size=width))
    _, _, _, symbols, embeddings, probas = tf.while_loop(
        lambda col, *rest: col < width, step, initial, parallel_iterations=1)
    return (tf.transpose(symbols.stack()), tf.transpose(embeddings.stack(), [1, 0, 2])[:, None],
            tf.transpose(probas.stack(), [1, 0, 2]))


def _outer_caches(model, batch):
    """Zero key/value caches of the outer decoder's column attention blocks:
    (keys, values) per block, each (B, W, heads, H, depth)."""
    outer = model.outer_decoder
    depth = outer.hidden_size // outer.num_heads
    shape = (batch, outer.width, outer.num_heads, outer.height, depth)
    return [(tf.zeros(shape), tf.zeros(shape)) for b in outer.blocks
            if hasattr(b, "attention") and b.attention.axis == "column"]


def _sample(model, z, uniforms, write, mode, norm_context, temperature, top_k, top_p):
    """Rows and pixels of the images whose encoder output is z (B, H, W, D)."""
    batch = tf.shape(z)[0]
    _, height, width, hidden = z.shape
    outer, inner = model.outer_decoder, model.inner_decoder
    outer_norms = [_norm_conditions(b, z) for b in outer.blocks]
    inner_norms_image = [_norm_conditions(b, z) for b in inner.blocks]
    constants = [_attention_step_constants(b.attention) for b in inner.blocks
                 if hasattr(b, "attention")]

    def choose(logits, probs, uniform):
        return _choose(logits, probs, uniform, mode, temperature, top_k, top_p)

    def row_step(row, upper, caches, symbols, probas):
        z_row = _at(z, row, 1)
        if norm_context == "reference":
            inner_norms = [_norm_conditions(b, z_row) for b in inner.blocks]
        else:
            inner_norms = inner_norms_image
        row_symbols, row_embeddings, row_proba = _inner_row(
            model, z_row, upper, row, inner_norms, _at(uniforms, row, 1)[:, 0], choose,
            constants, write)
        # The last row's outer output is never used; computing it keeps the loop simple.
        upper, caches = _outer_row(model, row_embeddings, z_row, row, caches, outer_norms,
                                   write)
        return (row + 1, upper, caches, symbols.write(row, row_symbols),
                probas.write(row, row_proba))

    initial = (tf.constant(0), tf.zeros((batch, 1, width, hidden)), _outer_caches(model, batch),
               tf.TensorArray(tf.int32, size=height), tf.TensorArray(tf.float32, size=height))
    *_, symbols, probas = tf.while_loop(lambda row, *rest: row < height, row_step, initial,
                                        parallel_iterations=1)
    return {"symbols": tf.transpose(symbols.stack(), [1, 0, 2]),
            "proba": tf.transpose(probas.stack(), [1, 0, 2, 3])}


def _encode(model, gray):
    """The encoder output z and, with a parallel head, its argmax symbols."""
    z = model.encode(gray)
    outputs = {"z": z}
    if model.has_parallel_head:
        outputs["parallel_symbols"] = tf.argmax(model.parallel_logits(z), axis=-1,
                                                output_type=tf.int32)
    return outputs


_COMPILED = weakref.WeakKeyDictionary()  # model -> {"encode" | options: tf.function}


def _compiled(model, options, jit_compile):
    """The encoder as a plain graph (one pass of large matmuls, which TensorFlow's
    own kernels run ~15% faster than XLA:CPU here) and the row and pixel loops
    as one XLA computation (or a plain graph with jit_compile=False)."""
    functions = _COMPILED.setdefault(model, {})
    key = (options, jit_compile)
    if key not in functions:
        def run(z, uniforms):
            write = _write_xla if jit_compile else _write_select
            return _sample(model, z, uniforms, write, *options)
        functions[key] = tf.function(run, jit_compile=jit_compile, reduce_retracing=True)
    if "encode" not in functions:
        functions["encode"] = tf.function(lambda gray: _encode(model, gray),
                                          reduce_retracing=True)
    return functions["encode"], functions[key]


def sample_colorizer_cached(model, gray, mode: str = "sample", norm_context: str = "exact",
                            seeds=None, temperature: float = 1.0, top_k: int = 0,
                            top_p: float = 1.0, jit_compile: bool = True) -> dict:
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
      NumPy arrays like `sample_colorizer`: {"auto_<mode>", "symbols", "proba",
      ["parallel"]}, plus "uncertainty" (B, R, R) = the per-pixel max of proba.
    """
    if mode not in SAMPLE_MODES:
        raise ValueError(f"mode={mode!r} is not supported; choose one of {SAMPLE_MODES}.")
    if norm_context not in NORM_CONTEXTS:
        raise ValueError(f"norm_context={norm_context!r} is not supported; "
                         f"choose one of {NORM_CONTEXTS}.")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0.")
    if not 0 <= int(top_k) <= NUM_SYMBOLS:
        raise ValueError(f"top_k={top_k} must be in [0, {NUM_SYMBOLS}] (0: off).")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p} must be in (0, 1] (1: off).")
    gray = tf.convert_to_tensor(gray, tf.int32)
    res = model.resolution
    if tuple(gray.shape[1:]) != (res, res, 1):
        raise ValueError(f"Expected grayscale images of shape (B, {res}, {res}, 1), "
                         f"got {tuple(gray.shape)}.")
    batch = gray.shape[0]
    if seeds is None:
        seeds = np.random.randint(0, 2**31 - 1, size=batch)
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    if seeds.size == 1:
        seeds = seeds[0] + np.arange(batch)
    if seeds.size != batch:
        raise ValueError(f"{seeds.size} seeds for {batch} images.")
    uniforms = pixel_uniforms(tf.constant(seeds % (2**31 - 1), tf.int32), res, res)
    options = (mode, norm_context, float(temperature), int(top_k), float(top_p))
    encode, sample = _compiled(model, options, bool(jit_compile))
    outputs = encode(gray)
    outputs.update(sample(outputs.pop("z"), uniforms))
    result = {f"auto_{mode}": image_ops.coarse_symbols_to_rgb(outputs["symbols"]),
              "symbols": outputs["symbols"], "proba": outputs["proba"],
              "uncertainty": ops.max(outputs["proba"], axis=-1)}
    if "parallel_symbols" in outputs:
        result["parallel"] = image_ops.coarse_symbols_to_rgb(outputs["parallel_symbols"])
    return {key: np.asarray(value) for key, value in result.items()}


SAMPLERS = ("cached", "loop")
SAMPLER_DEFAULTS = {"sampler": "cached", "norm_context": "exact", "temperature": 1.0,
                    "top_k": 0, "top_p": 1.0}


def sampler_options(sample_config) -> dict:
    """The colorizer sampler's options of a config.sample block (defaults for the
    keys it lacks, e.g. an original config)."""
    options = {key: type(default)(sample_config.get(key, default))
               for key, default in SAMPLER_DEFAULTS.items()}
    if options["sampler"] not in SAMPLERS:
        raise ValueError(f"sampler={options['sampler']!r}; choose one of {SAMPLERS} "
                         "('loop' is the original algorithm, minutes per image).")
    return options


def sample_coarse(model, gray, mode: str, seeds, options: dict | None = None) -> dict:
    """Coarse colours with the sampler that `options` (see SAMPLER_DEFAULTS) name.

    The "loop" sampler (the original algorithm) has no temperature/top-k/top-p
    and takes one seed for the batch (the first of `seeds`).
    """
    options = {**SAMPLER_DEFAULTS, **(options or {})}
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    if options["sampler"] == "loop":
        changed = [k for k in ("temperature", "top_k", "top_p")
                   if options[k] != SAMPLER_DEFAULTS[k]]
        if changed:
            raise ValueError(f"{', '.join(changed)} need the cached sampler "
                             "(sampler='cached'); the original algorithm has no such controls.")
        out = sample_colorizer(model, gray, mode=mode, norm_context=options["norm_context"],
                               seed=int(seeds[0]))
        out["uncertainty"] = out["proba"].max(-1)
        return out
    return sample_colorizer_cached(
        model, gray, mode=mode, norm_context=options["norm_context"], seeds=seeds,
        temperature=options["temperature"], top_k=options["top_k"], top_p=options["top_p"])
