"""Post-LN residual connection: x <- Norm(x + Dropout(y)), as every ColTran block."""

import keras

from coltran_tf.layers.conditional_layer_norm import ConditionalLayerNorm
from coltran_tf.layers.layer_norm import LayerNorm


@keras.saving.register_keras_serializable(package="coltran_tf")
class PostLNResidual(keras.layers.Layer):
    """Adds a sub-layer's output to its input, then layer-normalises.

    With `conditional=True` the norm is a ConditionalLayerNorm, which needs a
    `context` (or precomputed `conditions`); `cond_ln_kwargs` are its options
    (spatial_average, sequence, out_init, out_act) and `height`/`width` the
    canvas of its learnable pooling weights.
    """

    def __init__(self, hidden_size: int, dropout: float = 0.0, conditional: bool = False,
                 height: int | None = None, width: int | None = None,
                 cond_ln_kwargs: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.conditional = conditional
        self.height = height
        self.width = width
        self.cond_ln_kwargs = dict(cond_ln_kwargs or {})
        self.drop = keras.layers.Dropout(dropout, name="dropout")
        if conditional:
            self.norm = ConditionalLayerNorm(
                hidden_size, height, width, name="norm", **self.cond_ln_kwargs)
        else:
            self.norm = LayerNorm(epsilon=1e-3, name="norm")

    def call(self, inputs, outputs, context=None, conditions=None, training=False):
        summed = self.drop(outputs, training=training) + inputs
        if self.conditional:
            return self.norm(summed, context=context, conditions=conditions)
        return self.norm(summed)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, dropout=self.dropout,
                      conditional=self.conditional, height=self.height, width=self.width,
                      cond_ln_kwargs=self.cond_ln_kwargs)
        return config
