"""Colour transfer: a small colouring applied to a photo of any size."""

import numpy as np
import tensorflow as tf

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601
_CB = np.array([-0.168736, -0.331264, 0.5], np.float32)
_CR = np.array([0.5, -0.418688, -0.081312], np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float RGB -> (...) BT.601 luma."""
    return rgb @ _LUMA


def apply_chroma(original: np.ndarray, colored: np.ndarray) -> np.ndarray:
    """Original's luminance + the chroma of `colored` resized to its size.

    Args:
      original: (H, W, 3) uint8, any size.
      colored: (h, w, 3) uint8, the model's output.

    Returns:
      (H, W, 3) uint8. Its BT.601 luma equals the original's wherever the
      result is inside the RGB cube.
    """
    colored = colored.astype(np.float32)
    chroma = np.stack([colored @ _CB, colored @ _CR], axis=-1)
    height, width = original.shape[:2]
    chroma = tf.image.resize(chroma, [height, width], method="bilinear", antialias=True).numpy()
    y = luma(original.astype(np.float32))
    cb, cr = chroma[..., 0], chroma[..., 1]
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], -1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
