"""iColoriT's patch embedding (Yun et al. 2023, Sec. 3.1; the ViT's linear projection of
flattened patches, Dosovitskiy et al. 2021, Eq. 1).

The official model writes it as a Conv2D with kernel = stride = P. We compute the
same linear map as a reshape/transpose ("patchify") and one matmul with the same
(P, P, C, d) kernel, for two reasons:
- oneDNN's AMX kernels for strided bfloat16 convolutions give silently wrong
  results on CPUs with AMX (relative error ~1 with TensorFlow 2.21's oneDNN); its
  bfloat16 matmuls are right, so bfloat16 iColoriT is right on every CPU.
- The exported graphs (SavedModel, LiteRT, ONNX) hold a matmul, which every
  runtime supports, instead of a large-stride convolution.
The kernel keeps the convolution's HWIO layout, so weight files and the official
converter are unchanged.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="coltran_tf.icolorit")
class PatchEmbedding(keras.layers.Layer):
    """(B, H, W, C) -> (B, (H/P)(W/P), d): each P x P patch, flattened in (row,
    column, channel) order, times `kernel` (P, P, C, d) reshaped to (P²C, d), plus
    `bias` (d,). Patches are numbered row-major over the grid."""

    def __init__(self, patch_size: int, hidden_size: int, channels: int = 4,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.patch_size, self.hidden_size, self.channels = patch_size, hidden_size, channels
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape=None):
        patch = self.patch_size
        self.kernel = self.add_weight(name="kernel", initializer=self.kernel_initializer,
                                      shape=(patch, patch, self.channels, self.hidden_size))
        self.bias = self.add_weight(name="bias", initializer=self.bias_initializer,
                                    shape=(self.hidden_size,))

    def patchify(self, images):
        """(B, H, W, C) -> (B, N, P²C), N = (H/P)(W/P) patches in row-major order."""
        patch, channels = self.patch_size, self.channels
        batch = ops.shape(images)[0]
        rows, columns = images.shape[1] // patch, images.shape[2] // patch
        x = ops.reshape(images, (batch, rows, patch, columns, patch, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (batch, rows * columns, patch * patch * channels))

    def call(self, images):
        patches = self.patchify(ops.cast(images, self.compute_dtype))
        kernel = ops.reshape(ops.cast(self.kernel, self.compute_dtype), (-1, self.hidden_size))
        return ops.matmul(patches, kernel) + ops.cast(self.bias, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        patch = self.patch_size
        tokens = None
        if input_shape[1] is not None and input_shape[2] is not None:
            tokens = (input_shape[1] // patch) * (input_shape[2] // patch)
        return (input_shape[0], tokens, self.hidden_size)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size,
                "hidden_size": self.hidden_size, "channels": self.channels,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}
