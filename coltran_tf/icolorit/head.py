"""The local stabilizing head (Yun et al. 2023, Sec. 3.3): reflect pad 1, 3x3 conv d -> 2P², tanh,
then pixel shuffle in depth_to_space order k = (p1 * P + p2) * 2 + c."""

import keras
from keras import ops


def pixel_shuffle(tokens, grid: int, patch: int):
    """(B, g, g, P*P*2) -> (B, g*P, g*P, 2), channel k -> (p1, p2, c) row-major."""
    batch = ops.shape(tokens)[0]
    x = ops.reshape(tokens, (batch, grid, grid, patch, patch, 2))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (batch, grid * patch, grid * patch, 2))


@keras.saving.register_keras_serializable(package="coltran_tf.icolorit")
class LocalStabilizingHead(keras.layers.Layer):
    """(B, N, d) tokens -> (B, N, 2P²) in (-1, 1) (token form, as the official model)."""

    def __init__(self, patch_size: int, grid: int, hidden_size: int, **kwargs):
        super().__init__(**kwargs)
        self.patch_size, self.grid, self.hidden_size = patch_size, grid, hidden_size
        limit = (9 * hidden_size) ** -0.5  # PyTorch's Conv2d default U(-1/sqrt(fan_in), ..)
        self.conv = keras.layers.Conv2D(
            2 * patch_size**2, 3, padding="valid",
            kernel_initializer=keras.initializers.RandomUniform(-limit, limit),
            bias_initializer=keras.initializers.RandomUniform(-limit, limit), name="conv")

    def build(self, input_shape):
        self.conv.build((None, self.grid + 2, self.grid + 2, self.hidden_size))

    def call(self, tokens):
        batch = ops.shape(tokens)[0]
        grid = ops.reshape(tokens, (batch, self.grid, self.grid, tokens.shape[-1]))
        padded = ops.pad(grid, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        out = ops.tanh(self.conv(padded))
        return ops.reshape(out, (batch, self.grid * self.grid, 2 * self.patch_size**2))

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "grid": self.grid,
                "hidden_size": self.hidden_size}
