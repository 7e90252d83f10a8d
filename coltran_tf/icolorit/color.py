"""sRGB <-> CIE Lab (D65) exactly as the official iColoriT code converts.

All functions take and return channels-last tensors (..., 3) and work on
NumPy arrays and backend tensors alike (keras.ops).
"""

import numpy as np
from keras import ops

L_CENT, L_NORM, AB_NORM = 50.0, 100.0, 110.0
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]], np.float32)
_XYZ_TO_RGB = np.array([[3.24048134, -1.53715152, -0.49853633],
                        [-0.96925495, 1.87599, 0.04155593],
                        [0.05564664, -0.20404134, 1.05731107]], np.float32)
_WHITE = np.array([0.95047, 1.0, 1.08883], np.float32)


def rgb_to_lab(rgb):
    """(..., 3) RGB in [0, 1] -> (..., 3) Lab (L in [0, 100], a/b about +-110)."""
    rgb = ops.cast(rgb, "float32")
    linear = ops.where(rgb > 0.04045, ops.power((rgb + 0.055) / 1.055, 2.4), rgb / 12.92)
    xyz = ops.matmul(linear, ops.transpose(ops.convert_to_tensor(_RGB_TO_XYZ))) / _WHITE
    f = ops.where(xyz > 0.008856, ops.power(ops.maximum(xyz, 1e-12), 1.0 / 3.0),
                  7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return ops.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
    """(..., 3) Lab -> (..., 3) RGB; negatives clamped to 0, no upper clip (as the
    official code)."""
    lab = ops.cast(lab, "float32")
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = lab[..., 1] / 500.0 + fy
    fz = ops.maximum(fy - lab[..., 2] / 200.0, 0.0)
    f = ops.stack([fx, fy, fz], axis=-1)
    xyz = ops.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / 7.787) * _WHITE
    linear = ops.maximum(ops.matmul(xyz, ops.transpose(ops.convert_to_tensor(_XYZ_TO_RGB))), 0.0)
    return ops.where(linear > 0.0031308,
                     1.055 * ops.power(ops.maximum(linear, 1e-12), 1.0 / 2.4) - 0.055,
                     12.92 * linear)


def normalize_lab(lab):
    """Lab -> the network's [L_n, a_n, b_n] = [(L - 50) / 100, a / 110, b / 110]."""
    return ops.concatenate([(lab[..., :1] - L_CENT) / L_NORM, lab[..., 1:] / AB_NORM], axis=-1)


def denormalize_lab(lab_n):
    return ops.concatenate([lab_n[..., :1] * L_NORM + L_CENT, lab_n[..., 1:] * AB_NORM], axis=-1)


def lab_to_uint8(lightness, ab) -> np.ndarray:
    """L (..., 1) and ab (..., 2) -> RGB uint8, clipped to [0, 1] and rounded (as
    the official evaluation saves its predictions)."""
    rgb = np.asarray(lab_to_rgb(ops.concatenate([lightness, ab], axis=-1)))
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def in_gamut(lab, tolerance: float = 1.0) -> np.ndarray:
    """(...) bool: Lab colours that sRGB shows without clipping (converting the
    clipped RGB back to Lab lands within `tolerance` of where it started)."""
    lab = np.asarray(lab, np.float32)
    rgb = np.clip(np.asarray(lab_to_rgb(lab)), 0.0, 1.0)
    return np.abs(np.asarray(rgb_to_lab(rgb)) - lab).max(axis=-1) < tolerance


def fit_chroma(lightness, ab, steps: int = 32) -> np.ndarray:
    """(..., 2) ab scaled towards grey just enough that (L, ab) is inside sRGB:
    the same hue at that lightness, as saturated as the screen can show.

    Args:
      lightness: (..., 1) Lab L (broadcast against ab).
      ab: (..., 2).
    """
    ab = np.asarray(ab, np.float32)
    lightness = np.broadcast_to(np.asarray(lightness, np.float32), ab.shape[:-1] + (1,))
    scales = np.linspace(1.0, 0.0, steps + 1, dtype=np.float32)  # the first inside wins
    lab = np.concatenate([np.broadcast_to(lightness[None], (steps + 1,) + lightness.shape),
                          scales.reshape((-1,) + (1,) * ab.ndim) * ab[None]], axis=-1)
    first = np.argmax(in_gamut(lab), axis=0)  # grey (scale 0) is always inside
    return ab * scales[first][..., None]


def ab_gamut(lightness: float, size: int = 129, ab_max: float = AB_NORM) -> np.ndarray:
    """The sRGB colours of lightness L as an ab plane: (size, size, 4) uint8 RGBA,
    a from -ab_max (left) to +ab_max (right), b from +ab_max (top) to -ab_max
    (bottom); colours outside the sRGB gamut (see in_gamut) are transparent.
    """
    axis = np.linspace(-ab_max, ab_max, size, dtype=np.float32)
    a, b = np.meshgrid(axis, axis[::-1])
    lab = np.stack([np.full_like(a, float(lightness)), a, b], axis=-1)
    rgb = np.clip(np.asarray(lab_to_rgb(lab)), 0.0, 1.0)
    rgba = np.concatenate([np.round(rgb * 255.0), in_gamut(lab)[..., None] * 255.0], axis=-1)
    return rgba.astype(np.uint8)
