"""Conditional LayerNorm (Kumar et al. 2021, Sec. 4.2: scale and shift from the
spatially pooled conditioning context)."""

import keras
from keras import ops

from coltran_tf.layers.activations import check_choice, get_activation
from coltran_tf.layers.layer_norm import LayerNorm

SPATIAL_AVERAGES = ("learnable", "mean")
SEQUENCES = ("sc", "cs")


@keras.saving.register_keras_serializable(package="coltran_tf")
class ConditionalLayerNorm(keras.layers.Layer):
    """LayerNorm whose scale and shift come from a spatially pooled context.

    `normalize` is a LayerNorm with frozen gamma = 1, beta = 0 (the original
    creates and freezes them; they are kept so that checkpoints map one to
    one). From the context c (B, H', W', C): with `sequence="sc"` pool then
    Dense(2D); with `"cs"` Dense then pool. Pooling `"learnable"` multiplies by
    a (1, H, W, 1) weight (initialised to ones) before the spatial mean. The 2D
    vector is split into [scale, shift], each through `out_act`.
    """

    def __init__(
        self,
        hidden_size: int,
        height: int,
        width: int,
        spatial_average: str = "learnable",
        sequence: str = "sc",
        out_init: str = "glorot_uniform",
        out_act: str = "identity",
        epsilon: float = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choice("cond_ln_sp_ave", spatial_average, SPATIAL_AVERAGES)
        check_choice("cond_ln_seq", sequence, SEQUENCES)
        self.hidden_size = hidden_size
        self.height = height
        self.width = width
        self.spatial_average = spatial_average
        self.sequence = sequence
        self.out_init = out_init
        self.out_act = out_act
        self.epsilon = epsilon
        self._act = get_activation(out_act)
        self.normalize = LayerNorm(
            epsilon=epsilon, trainable=False, name="normalize"
        )
        self.dense = keras.layers.Dense(2 * hidden_size, kernel_initializer=out_init, name="dense")

    def build(self, input_shape=None):
        if self.spatial_average == "learnable":
            self.spatial_weights = self.add_weight(
                name="spatial_average", shape=(1, self.height, self.width, 1), initializer="ones"
            )
        self.normalize.build((None, self.hidden_size))

    def _pool(self, context):
        if self.spatial_average == "learnable":
            # A context of a single row (the reference sampler's quirk) broadcasts
            # against the (H, W) weights exactly as in the original.
            context = self.spatial_weights * context
        return ops.mean(context, axis=(1, 2), keepdims=True)

    def condition(self, context):
        """[scale, shift], each (B, 1, 1, D), from a context (B, H', W', C)."""
        if self.sequence == "sc":
            out = self.dense(self._pool(context))
        else:
            out = self._pool(self.dense(context))
        scale, shift = ops.split(out, 2, axis=-1)
        return self._act(scale), self._act(shift)

    def call(self, inputs, context=None, conditions=None):
        """Normalises (B, H, W, D) inputs; give `context` or precomputed `conditions`."""
        scale, shift = self.condition(context) if conditions is None else conditions
        return self.normalize(inputs) * scale + shift

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, height=self.height, width=self.width,
            spatial_average=self.spatial_average, sequence=self.sequence,
            out_init=self.out_init, out_act=self.out_act, epsilon=self.epsilon,
        )
        return config
