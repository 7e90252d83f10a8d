"""Per-image quality measures shared by ColTran's and iColoriT's evaluators:
PSNR and colourfulness.

PSNR = 10 log10(MAX^2 / MSE) over all pixels and channels of one image pair,
with an optional MSE floor (iColoriT's evaluator caps PSNR that way; Yun et
al. 2023). Colourfulness is Hasler and Suesstrunk's (2003) measure on 8-bit
RGB, in the absolute-difference form the colorization literature reports
(e.g. DDColor, Kang et al. 2023):

  rg = |R - G|,  yb = |(R + G) / 2 - B|
  CF = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)
"""

import numpy as np


class EvaluationError(ValueError):
    """Bad evaluation input (both evaluators: ColTran's image sets, iColoriT's
    hints); the message names the problem and the fix."""


def psnr_from_mse(mse: float, max_value: float = 255.0, mse_floor: float = 0.0) -> float:
    """10 log10(max^2 / max(mse, floor)); inf for mse = 0 without a floor."""
    mse = max(float(mse), mse_floor)
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max_value**2 / mse))


def psnr(predicted: np.ndarray, target: np.ndarray, max_value: float = 255.0,
         mse_floor: float = 0.0) -> float:
    """PSNR of one image pair (same shape; any dtype, compared in float64)."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape:
        raise ValueError(f"PSNR needs images of one shape, got {predicted.shape} and "
                         f"{target.shape}.")
    difference = predicted.astype(np.float64) - target.astype(np.float64)
    return psnr_from_mse(float(np.mean(difference**2)), max_value, mse_floor)


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler-Suesstrunk colourfulness of one (H, W, 3) RGB image in [0, 255]."""
    rgb = np.asarray(rgb, np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"colorfulness needs an (H, W, 3) RGB image, got {rgb.shape}.")
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = np.abs(red - green)
    yb = np.abs(0.5 * (red + green) - blue)
    spread = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    level = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + 0.3 * level)
