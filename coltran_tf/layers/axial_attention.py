"""Multi-head axial (row or column) self-attention with optional conditioning.

Spec COLTRAN.md §3: q, k, v and output projections without biases, a relative
position bias table of shape (heads, 2L) per layer, "future" masking with
-1e6, and conditional attention (a projection of a context per conditioned
tensor among q, k, v, either [scale, shift] or an additive shift).
"""

import keras
from keras import ops

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
        weights = ops.softmax(logits, axis=-1)
        return ops.einsum("...hqk,...khe->...qhe", weights, v)

    def call(self, inputs, context=None, training=False):
        """(B, H, W, D) inputs (and context (B, H, W, C)) -> (B, H, W, D)."""
        q, k, v = (self.to_sequence(t) for t in self.project(inputs, context))
        return self.output_projection(self.from_sequence(self.attend(q, k, v)))

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_heads=self.num_heads, axis=self.axis,
            length=self.length, mask=self.mask, cond_q=self.cond_q, cond_k=self.cond_k,
            cond_v=self.cond_v, cond_scale=self.cond_scale, cond_act=self.cond_act,
            cond_init=self.cond_init,
        )
        return config
