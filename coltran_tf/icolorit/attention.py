"""Multi-head self-attention with q/v biases and a relative position bias table
(iColoriT, Yun et al. 2023, Sec. 3.2)."""

import keras
import numpy as np
from keras import ops


def relative_position_index(grid: int) -> np.ndarray:
    """(N, N) int32, N = grid²: index(i, j) = (r_i - r_j + g - 1)(2g - 1) + (c_i - c_j + g - 1)."""
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    d_row = rows[:, None] - rows[None, :] + grid - 1
    d_col = cols[:, None] - cols[None, :] + grid - 1
    return (d_row * (2 * grid - 1) + d_col).astype(np.int32)


@keras.saving.register_keras_serializable(package="coltran_tf.icolorit")
class TruncatedAtOneStd(keras.initializers.Initializer):
    """Normal(0, stddev) truncated at +-stddev (the official RPB init;
    Keras' TruncatedNormal cuts at 2 stddev)."""

    def __init__(self, stddev: float = 0.02, seed=None):
        self.stddev, self.seed = stddev, seed

    def __call__(self, shape, dtype=None):
        # Without a seed, draw one from NumPy's global generator, which
        # keras.utils.set_random_seed seeds: training stays reproducible.
        seed = self.seed if self.seed is not None else np.random.randint(2**31 - 1)
        rng = np.random.default_rng(seed)
        values = rng.standard_normal(int(np.prod(shape)))
        bad = np.abs(values) > 1.0
        while bad.any():
            values[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(values) > 1.0
        return ops.convert_to_tensor((values * self.stddev).reshape(shape), dtype or "float32")

    def get_config(self):
        return {"stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="coltran_tf.icolorit")
class RelativeAttention(keras.layers.Layer):
    """(B, N, d) -> (B, N, d) over tokens of a grid x grid patch grid.

    q|k|v = x @ qkv + [q_bias, 0, v_bias]; q scaled by head_dim^-0.5; logits +=
    rpb_table[index(i, j), head]; softmax over keys; heads concatenated; proj.
    """

    def __init__(self, hidden_size: int, num_heads: int, grid: int, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size={hidden_size} is not divisible by "
                             f"num_heads={num_heads}.")
        self.hidden_size, self.num_heads, self.grid = hidden_size, num_heads, grid
        self.head_dim = hidden_size // num_heads
        self.qkv = keras.layers.Dense(3 * hidden_size, use_bias=False, name="qkv")
        self.proj = keras.layers.Dense(hidden_size, name="proj")
        self._index = relative_position_index(grid)

    def build(self, input_shape):
        d = self.hidden_size
        self.q_bias = self.add_weight(shape=(d,), initializer="zeros", name="q_bias")
        self.v_bias = self.add_weight(shape=(d,), initializer="zeros", name="v_bias")
        self.rpb_table = self.add_weight(shape=((2 * self.grid - 1) ** 2, self.num_heads),
                                         initializer=TruncatedAtOneStd(0.02), name="rpb_table")
        self.qkv.build(input_shape)
        self.proj.build(input_shape)

    def position_bias(self):
        """(heads, N, N) bias added to every batch element's logits."""
        bias = ops.take(self.rpb_table, ops.convert_to_tensor(self._index), axis=0)
        return ops.transpose(bias, (2, 0, 1))

    def call(self, x):
        batch, tokens = ops.shape(x)[0], ops.shape(x)[1]
        bias = ops.concatenate([self.q_bias, ops.zeros_like(self.q_bias), self.v_bias], axis=0)
        qkv = ops.reshape(self.qkv(x) + bias, (batch, tokens, 3, self.num_heads, self.head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # (3, B, h, N, e)
        q, k, v = qkv[0] * self.head_dim**-0.5, qkv[1], qkv[2]
        logits = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) + self.position_bias()
        # The softmax in float32 whatever the compute dtype, as in ColTran's attention.
        weights = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        attended = ops.matmul(ops.cast(weights, v.dtype), v)  # (B, h, N, e)
        attended = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)),
                               (batch, tokens, self.hidden_size))
        return self.proj(attended)

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "num_heads": self.num_heads, "grid": self.grid}
