"""Pre-norm ViT block of iColoriT (Yun et al. 2023, Sec. 3.2): z += attn(LN1 z); z += MLP(LN2 z)."""

import keras
from keras import ops

from coltran_tf.icolorit.attention import RelativeAttention

LAYER_NORM_EPS = 1e-6


def exact_gelu(x):
    """GELU(x) = x * (1 + erf(x / sqrt(2))) / 2 (Hendrycks and Gimpel 2016), the
    erf form PyTorch's nn.GELU uses, evaluated in float32 whatever the compute
    dtype: erf in bfloat16 runs ~3.5x slower on CPUs here (tools/profile_ops.py),
    and ONNX has Erf but no Erfc (which Keras' TensorFlow gelu uses)."""
    x32 = ops.cast(x, "float32")
    return ops.cast(0.5 * x32 * (1.0 + ops.erf(x32 * 0.7071067811865476)), x.dtype)


@keras.saving.register_keras_serializable(package="coltran_tf.icolorit")
class TransformerBlock(keras.layers.Layer):
    """(B, N, d) -> (B, N, d); MLP d -> mlp_ratio*d (exact GELU) -> d."""

    def __init__(self, hidden_size: int, num_heads: int, grid: int, mlp_ratio: int = 4,
                 drop_path: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size, self.num_heads, self.grid = hidden_size, num_heads, grid
        self.mlp_ratio, self.drop_path = mlp_ratio, drop_path
        self.norm1 = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name="norm1")
        self.attn = RelativeAttention(hidden_size, num_heads, grid, name="attn")
        self.norm2 = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name="norm2")
        self.fc1 = keras.layers.Dense(mlp_ratio * hidden_size, name="fc1")
        self.fc2 = keras.layers.Dense(hidden_size, name="fc2")
        # Drop-path's own random stream: its state is part of a training checkpoint
        # (train/loop.py random_state), so a resumed run drops the same branches.
        self.drop_path_seed = keras.random.SeedGenerator(name="drop_path_seed")

    def build(self, input_shape):
        hidden_shape = tuple(input_shape[:-1]) + (self.mlp_ratio * self.hidden_size,)
        for layer in (self.norm1, self.attn, self.norm2, self.fc1):
            layer.build(input_shape)
        self.fc2.build(hidden_shape)

    def _drop_path(self, x, training):
        """Stochastic depth: drop the whole residual branch per example."""
        if not training or not self.drop_path:
            return x
        keep = 1.0 - self.drop_path
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = ops.floor(keep + keras.random.uniform(shape, seed=self.drop_path_seed))
        return x * mask / keep

    def call(self, x, training=False):
        x = x + self._drop_path(self.attn(self.norm1(x)), training)
        hidden = self.fc1(self.norm2(x))
        return x + self._drop_path(self.fc2(exact_gelu(hidden)), training)

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "num_heads": self.num_heads, "grid": self.grid, "mlp_ratio": self.mlp_ratio,
                "drop_path": self.drop_path}
