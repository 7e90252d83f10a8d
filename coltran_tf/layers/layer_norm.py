"""LayerNorm with the original's exact numerics on the TensorFlow backend."""

import keras


@keras.saving.register_keras_serializable(package="coltran_tf")
class LayerNorm(keras.layers.LayerNormalization):
    """LayerNormalization over the last axis (epsilon 1e-3, the Keras default).

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
        import tensorflow as tf

        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, [1, -1, inputs.shape[-1], 1])
        rows = tf.shape(flat)[1]
        normed, _, _ = tf.compat.v1.nn.fused_batch_norm(
            flat, scale=tf.ones([rows]), offset=tf.zeros([rows]), epsilon=self.epsilon,
            data_format="NCHW")
        return tf.reshape(normed, shape) * self.gamma + self.beta

    def get_config(self):
        config = super().get_config()
        config.pop("axis", None)
        for key in ("center", "scale", "rms_scaling", "beta_initializer", "gamma_initializer",
                    "beta_regularizer", "gamma_regularizer", "beta_constraint",
                    "gamma_constraint"):
            config.pop(key, None)
        return config
