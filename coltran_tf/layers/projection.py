"""EinsumDense for '...x,xy->...y' equations, computed by tensordot."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="coltran_tf")
class Projection(keras.layers.EinsumDense):
    """A bias-free EinsumDense that contracts the input's trailing axes.

    Same weights, names and forward values as `keras.layers.EinsumDense`; the
    TensorFlow gradient of an ellipsis einsum materialises a (..., x, y)
    intermediate and is ~100x slower than tensordot's matmul, which is what
    this layer uses.
    """

    def __init__(self, equation: str, output_shape, **kwargs):
        inputs, kernel_and_output = equation.split(",")
        contracted = inputs.replace("...", "")
        if not inputs.startswith("...") or not kernel_and_output.startswith(contracted):
            raise ValueError(f"Projection needs an equation '...x,xy->...y', got {equation!r}.")
        if kwargs.get("bias_axes"):
            raise ValueError("Projection has no bias; use keras.layers.EinsumDense for one.")
        super().__init__(equation, output_shape, **kwargs)
        self._contracted = len(contracted)

    def call(self, inputs, training=None):
        rank = len(inputs.shape)
        axes = [list(range(rank - self._contracted, rank)), list(range(self._contracted))]
        return ops.tensordot(inputs, self.kernel, axes=axes)
