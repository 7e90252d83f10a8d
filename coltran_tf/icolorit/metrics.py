"""Evaluation metrics as the official code computes them (Yun et al. 2023, Sec. 4.1).

Images are (224, 224, 3) RGB in [0, 1] (predictions 8-bit quantized first).
"""

import numpy as np

from coltran_tf.utils import image_metrics

MSE_FLOOR = 1e-5  # caps PSNR at 50 dB
PATCH = 16        # hard-coded in the official B-PSNR and PEV


def _psnr_of(mse: float) -> float:
    return image_metrics.psnr_from_mse(mse, max_value=1.0, mse_floor=MSE_FLOOR)


def psnr(predicted: np.ndarray, target: np.ndarray) -> float:
    return image_metrics.psnr(predicted, target, max_value=1.0, mse_floor=MSE_FLOOR)


def boundary_mask(size: int = 224, patch: int = PATCH) -> np.ndarray:
    """(size, size) bool: rows and columns patch*k - 1 and patch*k, k = 1..size/patch - 1
    (both sides of every internal patch border; 10,972 pixels at 224)."""
    lines = np.zeros(size, bool)
    for k in range(1, size // patch):
        lines[[patch * k - 1, patch * k]] = True
    return lines[:, None] | lines[None, :]


def boundary_psnr(predicted: np.ndarray, target: np.ndarray) -> float:
    error = np.mean((predicted - target) ** 2, axis=-1)
    return _psnr_of(float(error[boundary_mask(error.shape[0])].mean()))


def patch_error_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """Unbiased variance of the per-patch RMSE (0-255 scale) over the 16x16 patches."""
    error = np.mean((255.0 * predicted - 255.0 * target) ** 2, axis=-1)
    size = error.shape[0] // PATCH
    patches = error[:size * PATCH, :size * PATCH].reshape(size, PATCH, size, PATCH)
    rmse = np.sqrt(patches.mean(axis=(1, 3))).reshape(-1)
    return float(np.var(rmse, ddof=1))


def colorfulness(predicted: np.ndarray, target: np.ndarray) -> float:
    """Colourfulness of the prediction (Hasler and Suesstrunk 2003, on 8-bit RGB)."""
    del target
    return image_metrics.colorfulness(255.0 * predicted)


METRICS = {"PSNR": psnr, "B-PSNR": boundary_psnr, "PEV": patch_error_variance,
           "CF": colorfulness}
