"""Position-wise feed-forward network and its conditional variant.

Kumar et al. 2021, Sec. 4.3 ("conditional MLP"): the hidden output is
modulated by an affine or additive projection of the conditioning context.
"""

import keras
from keras import ops

from coltran_tf.layers import decoding
from coltran_tf.layers.activations import check_choice, get_activation

COND_MLP_MODES = ("affine", "shift")


@keras.saving.register_keras_serializable(package="coltran_tf")
class FeedForward(keras.layers.Layer):
    """Dense(ff_size, relu) -> Dense(hidden_size), both with bias."""

    def __init__(self, hidden_size: int, ff_size: int, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.ff_size = ff_size
        self.expand = keras.layers.Dense(ff_size, activation="relu", name="expand")
        self.project = keras.layers.Dense(hidden_size, name="project")

    def call(self, inputs):
        return self.project(self.expand(inputs))

    def step(self, x, index, conditions=None):
        """One pixel (B, D) of an incremental decoder (no conditioning)."""
        return self(x)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, ff_size=self.ff_size)
        return config


@keras.saving.register_keras_serializable(package="coltran_tf")
class ConditionalFeedForward(keras.layers.Layer):
    """FeedForward whose output is modulated by a per-pixel context.

    `mode="affine"`: Dense(2D) on the context split into [shift, scale] (shift
    first: the opposite order to attention), output h * act(scale) + act(shift).
    `mode="shift"`: Dense(D) on the context added to h.
    """

    def __init__(self, hidden_size: int, ff_size: int, mode: str = "affine",
                 activation: str = "identity", **kwargs):
        super().__init__(**kwargs)
        check_choice("cond_mlp", mode, COND_MLP_MODES)
        self.hidden_size = hidden_size
        self.ff_size = ff_size
        self.mode = mode
        self.activation = activation
        self._act = get_activation(activation)
        self.mlp = FeedForward(hidden_size, ff_size, name="mlp")
        units = 2 * hidden_size if mode == "affine" else hidden_size
        self.cond = keras.layers.Dense(units, name="cond")

    def modulate(self, hidden, cond_out):
        """Applies a precomputed conditioning projection `cond_out` to `hidden`."""
        if self.mode == "shift":
            return hidden + cond_out
        shift, scale = keras.ops.split(cond_out, 2, axis=-1)
        return hidden * self._act(scale) + self._act(shift)

    def call(self, inputs, context):
        return self.modulate(self.mlp(inputs), self.cond(context))

    def step_conditions(self, context):
        """Per-line (scale or None, shift), each (L, B, D), of a row `context`
        (B, 1, L, C): what `modulate` applies at each position."""
        cond = decoding.columns_first(self.cond(context))
        if self.mode == "shift":
            return None, cond
        shift, scale = ops.split(cond, 2, axis=-1)
        return self._act(scale), self._act(shift)

    def step(self, x, index, conditions):
        """One pixel (B, D) at position `index` with step_conditions() of its row."""
        scale, shift = conditions
        y = self.mlp(x)
        if scale is None:
            return y + shift[index]
        return y * scale[index] + shift[index]

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, ff_size=self.ff_size,
                      mode=self.mode, activation=self.activation)
        return config
