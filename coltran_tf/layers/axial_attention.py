"""Multi-head axial (row or column) self-attention with optional conditioning.

Axial attention (Ho et al. 2019) as ColTran uses it (Kumar et al. 2021,
Sec. 3 and 4.2): q, k, v and output projections without biases, a relative
position bias table of shape (heads, 2L) per layer, "future" masking with
-1e6, and conditional attention (Sec. 4.3: a projection of a context per
conditioned tensor among q, k, v, either [scale, shift] or an additive shift).
The layer also owns its incremental decoding: one position along the
attended axis at a time against a key/value cache (`call(..., cache=...)`),
and a fused single-pixel step for the inner decoder's sampling loop.
"""

import keras
from keras import ops

from coltran_tf.layers import decoding
from coltran_tf.layers.activations import check_choice, get_activation
from coltran_tf.layers.projection import Projection

MASK_VALUE = -1e6
AXES = ("row", "column")
MASKS = (None, "future")


@keras.saving.register_keras_serializable(package="coltran_tf")
class AxialAttention(keras.layers.Layer):
    """Self-attention along one image axis of a (B, H, W, D) tensor.

    `axis="row"` attends over the W pixels of each row, `axis="column"` over
    the H pixels of each column; `length` is the size of the attended axis.

    The computation is split into `project` (q, k, v in sequence layout
    (..., L, heads, depth), conditioned and with q scaled), `attend` (which
    accepts a query block that starts at `query_offset` inside a longer key
    sequence, so that a cached sampler can reuse it) and the output projection.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        axis: str,
        length: int,
        mask: str | None = None,
        cond_q: bool = False,
        cond_k: bool = False,
        cond_v: bool = False,
        cond_scale: bool = True,
        cond_act: str = "identity",
        cond_init: str = "glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choice("axis", axis, AXES)
        check_choice("mask", mask, MASKS)
        if hidden_size % num_heads:
            raise ValueError(
                f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}."
            )
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.axis = axis
        self.length = length
        self.mask = mask
        self.cond_q = cond_q
        self.cond_k = cond_k
        self.cond_v = cond_v
        self.cond_scale = cond_scale
        self.cond_act = cond_act
        self.cond_init = cond_init
        self.depth = hidden_size // num_heads
        self._act = get_activation(cond_act)

        heads = (num_heads, self.depth)
        self.q = Projection("...d,dhe->...he", heads, name="q")
        self.k = Projection("...d,dhe->...he", heads, name="k")
        self.v = Projection("...d,dhe->...he", heads, name="v")
        self.output_projection = Projection(
            "...he,hed->...d", (hidden_size,), name="output"
        )
        cond_heads = (num_heads, 2 * self.depth if cond_scale else self.depth)
        self.conditioned = tuple(w for w in ("q", "k", "v") if getattr(self, f"cond_{w}"))
        for which in self.conditioned:
            layer = Projection(
                "...c,che->...he", cond_heads, kernel_initializer=cond_init,
                name=f"cond_{which}",
            )
            setattr(self, f"cond_{which}_projection", layer)

    @property
    def is_conditional(self) -> bool:
        return bool(self.conditioned)

    def build(self, input_shape=None):
        self.relative_bias = self.add_weight(
            name="relative_attention_bias",
            shape=(self.num_heads, 2 * self.length),
            initializer="zeros",
        )

    # -- pieces reused by samplers -------------------------------------------

    def to_sequence(self, x):
        """(B, H, W, ...) -> layout with the attended axis third from the end."""
        return ops.swapaxes(x, 1, 2) if self.axis == "column" else x

    from_sequence = to_sequence  # the swap is its own inverse

    def _modulate(self, tensor, cond_out):
        if self.cond_scale:
            scale, shift = ops.split(cond_out, 2, axis=-1)
            return tensor * self._act(scale) + self._act(shift)
        return tensor + cond_out

    def condition(self, context):
        """{"q"|"k"|"v": conditioning projection of `context`} for the conditioned
        tensors; a sampler computes them once and passes them to `project`."""
        return {which: getattr(self, f"cond_{which}_projection")(context)
                for which in self.conditioned}

    def project(self, inputs, context=None, conditions=None):
        """q, k, v of (..., D) inputs: each (..., heads, depth).

        Conditioning (from `context`, or precomputed `conditions` of
        `condition`) is applied before q is scaled by depth^-0.5, as the
        original does.
        """
        if self.conditioned and conditions is None:
            if context is None:
                raise ValueError(f"{self.name}: conditional attention needs a context.")
            conditions = self.condition(context)
        projected = {}
        for which in ("q", "k", "v"):
            tensor = getattr(self, which)(inputs)
            if which in self.conditioned:
                tensor = self._modulate(tensor, conditions[which])
            projected[which] = tensor
        q = projected["q"] * (self.depth**-0.5)
        return q, projected["k"], projected["v"]

    def _relative(self, num_queries, num_keys, query_offset):
        """(Lq, Lk) key position minus query position."""
        q_pos = ops.arange(num_queries) + query_offset
        return ops.arange(num_keys)[None, :] - q_pos[:, None]

    def position_bias(self, num_queries, num_keys, query_offset=0):
        """(heads, Lq, Lk) added to the logits: bias[h, q, k] = table[h, k - q + L - 1],
        plus MASK_VALUE on keys after the query when the attention is masked."""
        relative = self._relative(num_queries, num_keys, query_offset)
        bias = ops.take(self.relative_bias, relative + self.length - 1, axis=1)
        if self.mask == "future":
            bias = bias + ops.cast(relative > 0, bias.dtype) * MASK_VALUE
        return bias

    def attend(self, q, k, v, query_offset=0):
        """Attention in sequence layout.

        Args:
          q: (..., Lq, heads, depth) queries at positions query_offset + [0, Lq).
          k, v: (..., Lk, heads, depth) keys and values at positions [0, Lk).
          query_offset: position of the first query (int or scalar tensor).

        Returns:
          (..., Lq, heads, depth).
        """
        logits = ops.einsum("...qhe,...khe->...hqk", q, k)
        # Unmasked logits get exactly the original's logits + bias; masked ones
        # vanish in the softmax either way.
        logits = logits + self.position_bias(q.shape[-3], k.shape[-3], query_offset)
        return ops.einsum("...hqk,...khe->...qhe", softmax(logits, v.dtype), v)

    def call(self, inputs, context=None, cache=None, cache_update_index=None,
             in_place=True, training=False):
        """(B, H, W, D) inputs (and context (B, H, W, C)) -> (B, H, W, D).

        With a `cache` (masked attention only), `inputs` hold one position of
        the attended axis, (B, 1, W, D) for column attention: its keys and
        values are written at `cache_update_index`, it attends to the cached
        positions up to that index, and (outputs, new cache) is returned.
        """
        if cache is not None:
            return self._decode_position(inputs, context, cache, cache_update_index, in_place)
        q, k, v = (self.to_sequence(t) for t in self.project(inputs, context))
        return self.output_projection(self.from_sequence(self.attend(q, k, v)))

    # -- incremental decoding -------------------------------------------------------

    def empty_cache(self, batch, lines=None):
        """Zero (keys, values) for decoding position by position, each
        (B, [lines,] heads, L, depth) in the compute dtype: `lines` parallel
        sequences (the columns of a row for column attention), or one per batch
        entry (pixel steps)."""
        shape = (batch, self.num_heads, self.length, self.depth)
        if lines is not None:
            shape = (batch, lines) + shape[1:]
        return ops.zeros(shape, self.compute_dtype), ops.zeros(shape, self.compute_dtype)

    def _decode_position(self, inputs, context, cache, index, in_place):
        if self.mask != "future":
            raise ValueError(f"{self.name}: decoding with a cache needs masked attention.")
        keys, values = cache
        q, k, v = (self.to_sequence(t) for t in self.project(inputs, context=context))
        keys = decoding.write(keys, k[:, :, 0], index, 3, in_place)  # (B, lines, h, L, e)
        values = decoding.write(values, v[:, :, 0], index, 3, in_place)
        bias = self.position_bias(1, self.length, index)[:, 0]  # (h, L)
        logits = ops.matmul(ops.swapaxes(q, 2, 3), ops.swapaxes(keys, -1, -2))
        weights = softmax(logits + bias[:, None], values.dtype)  # (B, lines, h, 1, L)
        attended = ops.swapaxes(ops.matmul(weights, values), 2, 3)  # (B, lines, 1, h, e)
        return self.output_projection(self.from_sequence(attended)), (keys, values)

    def step_constants(self):
        """Per-image tensors of the fused single-pixel step: the q|k|v kernel
        (D, 3D), the output kernel (D, D) and, per query position, the relative
        position bias plus the future mask, (L, heads, 1, L)."""
        hidden, dtype = self.hidden_size, self.compute_dtype
        kernel = ops.concatenate([ops.reshape(getattr(self, w).kernel, (hidden, hidden))
                                  for w in ("q", "k", "v")], axis=1)
        output = ops.reshape(self.output_projection.kernel, (hidden, hidden))
        bias = self.position_bias(self.length, self.length)  # (h, Lq, Lk)
        return (ops.cast(kernel, dtype), ops.cast(output, dtype),
                ops.cast(ops.transpose(bias, (1, 0, 2))[:, :, None], dtype))

    def step_conditions(self, context):
        """Per-line (scale, shift), each (L, B, 3D), such that
        q|k|v = (x @ kernel) * scale + shift at each position: the conditioning
        of `context` (B, 1, L, C) and q's depth^-0.5 folded in (the order of
        `project`)."""
        hidden = self.hidden_size
        conditions = self.condition(context) if self.is_conditional else {}
        lines = decoding.columns_first(context)[..., :1]  # (L, B, 1), whatever C is
        ones = ops.broadcast_to(ops.ones_like(lines), (*ops.shape(lines)[:2], hidden))
        scales, shifts = [], []
        for which in ("q", "k", "v"):
            factor = self.depth**-0.5 if which == "q" else 1.0
            if which not in conditions:
                scale, shift = ones, ops.zeros_like(ones)
            elif self.cond_scale:
                scale, shift = ops.split(conditions[which], 2, axis=-1)
                scale = decoding.columns_first(self._act(scale))
                shift = decoding.columns_first(self._act(shift))
            else:
                scale, shift = ones, decoding.columns_first(conditions[which])
            scales.append(scale * factor)
            shifts.append(shift * factor)
        return ops.concatenate(scales, -1), ops.concatenate(shifts, -1)

    def step(self, x, index, cache, constants, conditions, in_place=True):
        """One pixel of a masked row attention on flat tensors.

        Args:
          x: (B, D) the inputs at position `index`.
          index: scalar int tensor, the position along the row.
          cache: (keys, values), each (B, heads, L, depth).
          constants: step_constants(); conditions: step_conditions() of the row.

        Returns:
          ((B, D) outputs, new cache).
        """
        kernel, output, bias = constants
        scale, shift = conditions
        qkv = ops.matmul(x, kernel) * scale[index] + shift[index]
        q, k, v = (ops.reshape(t, (-1, self.num_heads, self.depth))
                   for t in ops.split(qkv, 3, axis=-1))
        keys = decoding.write(cache[0], k, index, 2, in_place)
        values = decoding.write(cache[1], v, index, 2, in_place)
        logits = ops.matmul(q[:, :, None], ops.swapaxes(keys, -1, -2)) + bias[index]
        attended = ops.matmul(softmax(logits, values.dtype), values)
        return ops.matmul(ops.reshape(attended, (-1, self.hidden_size)), output), (keys, values)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_heads=self.num_heads, axis=self.axis,
            length=self.length, mask=self.mask, cond_q=self.cond_q, cond_k=self.cond_k,
            cond_v=self.cond_v, cond_scale=self.cond_scale, cond_act=self.cond_act,
            cond_init=self.cond_init,
        )
        return config


def softmax(logits, dtype):
    """Attention weights: the softmax in float32 whatever the compute dtype (in
    bfloat16 its 8-bit mantissa rounds the normaliser and every weight), cast
    to `dtype` for the product with the values."""
    return ops.cast(ops.softmax(ops.cast(logits, "float32"), axis=-1), dtype)
