"""Dense layer on a one-hot input, computed as a table lookup."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="coltran_tf")
class SymbolEmbedding(keras.layers.Layer):
    """Equivalent to Dense(hidden_size)(one_hot(symbols, num_symbols)).

    A row gather gives bit-identical results to multiplying a one-hot vector
    (every other term is an exact zero) at a fraction of the cost, which
    matters for the 768-way one-hot of the spatial upsampler at 256x256.
    The kernel has the Dense layout (num_symbols, hidden_size).
    """

    def __init__(self, num_symbols: int, hidden_size: int, use_bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_symbols = num_symbols
        self.hidden_size = hidden_size
        self.use_bias = use_bias

    def build(self, input_shape=None):
        self.kernel = self.add_weight(name="kernel", shape=(self.num_symbols, self.hidden_size),
                                      initializer="glorot_uniform")
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.hidden_size,),
                                        initializer="zeros")

    def call(self, symbols):
        """(...) integer symbols -> (..., hidden_size)."""
        out = ops.take(self.kernel, ops.cast(symbols, "int32"), axis=0)
        return out + self.bias if self.use_bias else out

    def get_config(self):
        config = super().get_config()
        config.update(num_symbols=self.num_symbols, hidden_size=self.hidden_size,
                      use_bias=self.use_bias)
        return config
