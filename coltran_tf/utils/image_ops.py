"""Colour quantisation and grayscale conversion, exactly as the original ColTran.

Everything here is written with `keras.ops` so that the models stay backend
neutral; each function reproduces the original's integer arithmetic bit for bit
(the original's quantisation to 3 bits per channel), because the results feed one-hot encodings.
"""

import math

import numpy as np
from keras import ops

# tf.image.rgb_to_grayscale weights (ITU-R 601-2 luma, as TensorFlow rounds them).
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)
# tf.image.convert_image_dtype scales int32 by 1/max and back by max + 0.5.
_INT32_TO_FLOAT = np.float32(1.0 / 2147483647.0)
_FLOAT_TO_INT32 = np.float32(2147483647.5)

NUM_BITS_COARSE = 3
NUM_SYMBOLS_PER_CHANNEL = 2**NUM_BITS_COARSE  # 8
NUM_COARSE_SYMBOLS = NUM_SYMBOLS_PER_CHANNEL**3  # 512


def rgb_to_grayscale(rgb):
    """Grayscale of an int32 RGB image, as `tf.image.rgb_to_grayscale` on int32.

    TensorFlow converts int32 to float by scaling with 1/(2^31-1), takes the
    weighted sum and converts back by scaling with 2^31-0.5 and a cast, which
    truncates. The result is floor-like, not rounded; it is reproduced here in
    float32 so that every one of the 256 gray levels matches.

    Args:
      rgb: integer tensor (..., 3) with values in [0, 255].

    Returns:
      int32 tensor (..., 1).
    """
    flt = ops.cast(rgb, "float32") * _INT32_TO_FLOAT
    gray = ops.sum(flt * GRAY_WEIGHTS, axis=-1, keepdims=True)
    gray = ops.clip(gray * _FLOAT_TO_INT32, 0.0, 2147483520.0)
    return ops.cast(gray, "int32")


def convert_bits(x, n_bits_in: int = 8, n_bits_out: int = 3):
    """Requantises integers from `n_bits_in` to `n_bits_out` bits (the original's floor division).

    Downwards: float division by 2^(in-out) then truncation (floor for >= 0).
    Upwards: multiplication by 2^(out-in).
    """
    if n_bits_in == n_bits_out:
        return ops.cast(x, "int32")
    if n_bits_out < n_bits_in:
        x = ops.cast(x, "float32") / float(2 ** (n_bits_in - n_bits_out))
        return ops.cast(x, "int32")
    return ops.cast(x, "int32") * (2 ** (n_bits_out - n_bits_in))


def labels_to_bins(labels, num_symbols_per_channel: int = NUM_SYMBOLS_PER_CHANNEL):
    """(..., 3) coarse channel values -> (...) symbol r*64 + g*8 + b."""
    labels = ops.cast(labels, "int32")
    n = num_symbols_per_channel
    return labels[..., 0] * (n * n) + labels[..., 1] * n + labels[..., 2]


def bins_to_labels(bins, num_symbols_per_channel: int = NUM_SYMBOLS_PER_CHANNEL):
    """(...) symbols -> (..., 3) coarse channel values (inverse of labels_to_bins)."""
    bins = ops.cast(bins, "int32")
    n = num_symbols_per_channel
    red = bins // (n * n)
    green = (bins // n) % n
    blue = bins % n
    return ops.stack([red, green, blue], axis=-1)


def coarse_symbols_to_rgb(bins):
    """(...) 512-way symbols -> (..., 3) uint8 RGB (dequantised as x*32)."""
    rgb = convert_bits(bins_to_labels(bins), n_bits_in=NUM_BITS_COARSE, n_bits_out=8)
    return ops.cast(rgb, "uint8")


def rgb_to_coarse_symbols(rgb):
    """(..., 3) 8-bit RGB -> (...) 512-way symbols."""
    return labels_to_bins(convert_bits(rgb, n_bits_in=8, n_bits_out=NUM_BITS_COARSE))


def nats_to_bits(x):
    return x / math.log(2.0)
