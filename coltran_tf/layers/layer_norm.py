"""LayerNorm with the original's exact numerics on the TensorFlow backend."""

import keras


@keras.saving.register_keras_serializable(package="coltran_tf")
class LayerNorm(keras.layers.LayerNormalization):
    """LayerNormalization over the last axis (epsilon 1e-3, the Keras default).

    Under a mixed policy it computes in float32 and returns the compute dtype,
    as Keras' own LayerNormalization does.

    Keras 2, which trained the released ColTran checkpoints, normalises through
    a fused batch-norm kernel over a (1, N, D, 1) view of the input; Keras 3
    computes the moments with different rounding. The difference is ~1e-7, but
    it decides exact ties of argmax and hence autoregressive samples, so on the
    TensorFlow backend the fused kernel is used (bit-identical to the original
    in our fixture tests); other backends use the portable `keras.ops` path.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(axis=-1, epsilon=epsilon, **kwargs)

    def call(self, inputs):
        if keras.backend.backend() != "tensorflow":
            return super().call(inputs)
        # Statistics, scale and shift in float32 whatever the compute dtype
        # (the casts are no-ops in float32).
        normed = _fused_normalize(keras.ops.cast(inputs, "float32"), self.epsilon)
        return keras.ops.cast(normed * self.gamma + self.beta, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("axis", None)
        for key in ("center", "scale", "rms_scaling", "beta_initializer", "gamma_initializer",
                    "beta_regularizer", "gamma_regularizer", "beta_constraint",
                    "gamma_constraint"):
            config.pop(key, None)
        return config


def _fused_normalize(inputs, epsilon: float):
    """(x - mean) / sqrt(var + eps) over the last axis, by Keras 2's fused kernel.

    The kernel's own gradient (FusedBatchNormGrad in NCHW with N*H*W
    "channels") is ~50x slower than the forward pass on CPUs, so the backward
    pass uses the closed form of the layer-norm gradient instead.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def normalize(x):
        shape = tf.shape(x)
        flat = tf.reshape(x, [1, -1, x.shape[-1], 1])
        rows = tf.shape(flat)[1]
        normed, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            flat, scale=tf.ones([rows]), offset=tf.zeros([rows]), epsilon=epsilon,
            data_format="NCHW")
        normed = tf.reshape(normed, shape)

        def grad(upstream):
            inv_std = tf.math.rsqrt(tf.math.reduce_variance(x, axis=-1, keepdims=True) + epsilon)
            mean_up = tf.reduce_mean(upstream, axis=-1, keepdims=True)
            mean_up_normed = tf.reduce_mean(upstream * normed, axis=-1, keepdims=True)
            return inv_std * (upstream - mean_up - normed * mean_up_normed)

        return normed, grad

    return normalize(inputs)
