"""Losses in bits per dimension, as the original computes them (negative
log-likelihood in bits, divided by the number of predicted values)."""

import keras
from keras import ops

from coltran_tf.utils.image_ops import nats_to_bits


def bits_per_dim(labels, logits):
    """Softmax cross-entropy in bits, averaged over the batch, per dimension.

    Args:
      labels: (B, H, W, C) integer targets.
      logits: (B, H, W, C, K).

    Returns:
      Scalar: sum over pixels and channels of the batch-mean cross-entropy,
      in bits, divided by H * W * C. For the colorizer C = 1 (one 512-way
      symbol per pixel), so this is bits per pixel, not per sub-pixel.
    """
    height, width, channels = labels.shape[1:4]
    nats = keras.losses.sparse_categorical_crossentropy(
        ops.cast(labels, "int32"), logits, from_logits=True, axis=-1)
    nats = ops.sum(ops.mean(nats, axis=0))
    return nats_to_bits(nats) / (height * width * channels)
