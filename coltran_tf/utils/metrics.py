"""One registry of image-quality metrics, for both evaluators.

Every metric is a `Metric`: `update(generated, reference)` with images as they
stream by, `result()` its value. Per-image measures (PSNR and its boundary
form, patch error variance, colourfulness, LPIPS) average over what they were
given; FID accumulates the two sets' feature moments and compares them.
ColTran's evaluator (evaluation/evaluate.py) and iColoriT's
(icolorit/evaluation.py) create theirs by name: `create(name, **options)`.

Definitions:
  psnr          10 log10(MAX^2 / MSE) of each pair (image_metrics.psnr), averaged
                over finite values (identical pairs are counted apart).
  b-psnr        PSNR over the pixels on both sides of every internal patch border
                (iColoriT's boundary PSNR, Yun et al. 2023, Sec. 4.1).
  pev           unbiased variance of the per-patch RMSE, 0-255 scale (ibid.).
  colorfulness  Hasler and Suesstrunk's colourfulness of each generated image.
  lpips         a perceptual distance of each pair (`distance`: batch -> (B,)).
  fid           Frechet distance between the sets' feature moments (`extractor`).
"""

import numpy as np

from coltran_tf.utils import frechet, image_metrics


class Metric:
    """update() with each image (pair), result() the value."""

    name = ""
    paired = True  # needs each generated image's reference

    def update(self, generated, reference=None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError


class Mean(Metric):
    """The mean of a per-image (or per-pair) value over finite values; the
    non-finite ones (identical pairs' PSNR) are counted in `nonfinite`."""

    def __init__(self, name: str, function, paired: bool = True, batched: bool = False):
        self.name, self.function, self.paired, self.batched = name, function, paired, batched
        self.values, self.nonfinite = [], 0

    def update(self, generated, reference=None) -> None:
        value = self.function(generated, reference) if self.paired else self.function(generated)
        for v in (np.asarray(value, np.float64).reshape(-1) if self.batched else [value]):
            if np.isfinite(v):
                self.values.append(float(v))
            else:
                self.nonfinite += 1

    @property
    def count(self) -> int:
        return len(self.values) + self.nonfinite

    def result(self) -> float:
        if self.values:
            return float(np.mean(self.values))
        return float("inf") if self.nonfinite else float("nan")


class Frechet(Metric):
    """FID: `update(generated=..)` and `update(reference=..)` add images (as
    float arrays the extractor takes) to each set's streamed moments."""

    name, paired = "fid", False

    def __init__(self, extractor, batch_size: int = 50):
        self.extractor, self.batch_size = extractor, batch_size
        self.moments = {"generated": frechet.RunningMoments(),
                        "reference": frechet.RunningMoments()}
        self._pending = {"generated": [], "reference": []}

    def update(self, generated=None, reference=None) -> None:
        for label, image in (("generated", generated), ("reference", reference)):
            if image is None:
                continue
            pending = self._pending[label]
            if pending and pending[0].shape != image.shape and self.extractor.size is None:
                self.flush(label)  # a batch holds images of one size
            pending.append(image)
            if len(pending) >= self.batch_size:
                self.flush(label)

    def flush(self, label: str | None = None) -> None:
        for name in [label] if label else list(self._pending):
            if self._pending[name]:
                self.moments[name].update(self.extractor(_stack(self._pending[name],
                                                                self.extractor.size)))
                self._pending[name] = []

    def result(self) -> float:
        self.flush()
        return frechet.fid_from_moments(self.moments["generated"], self.moments["reference"])


def _stack(images, size):
    if size is None or len({im.shape for im in images}) == 1:
        return np.stack(images).astype(np.float32)
    import tensorflow as tf  # mixed sizes into a fixed-size extractor

    return np.stack([np.asarray(tf.image.resize(im.astype(np.float32), size, "bilinear"))
                     for im in images])


def boundary_mask(size: int, patch: int) -> np.ndarray:
    """(size, size) bool: rows and columns patch*k - 1 and patch*k, k = 1..size/patch - 1
    (both sides of every internal patch border; 10,972 pixels at 224 with 16)."""
    lines = np.zeros(size, bool)
    for k in range(1, size // patch):
        lines[[patch * k - 1, patch * k]] = True
    return lines[:, None] | lines[None, :]


def boundary_psnr(predicted, target, patch: int, max_value: float = 1.0,
                  mse_floor: float = 0.0) -> float:
    error = np.mean((predicted - target) ** 2, axis=-1)
    return image_metrics.psnr_from_mse(float(error[boundary_mask(error.shape[0], patch)].mean()),
                                       max_value=max_value, mse_floor=mse_floor)


def patch_error_variance(predicted, target, patch: int, scale: float = 255.0) -> float:
    """Unbiased variance of the per-patch RMSE (images in [0, 1] times `scale`)."""
    error = np.mean((scale * predicted - scale * target) ** 2, axis=-1)
    size = error.shape[0] // patch
    patches = error[:size * patch, :size * patch].reshape(size, patch, size, patch)
    rmse = np.sqrt(patches.mean(axis=(1, 3))).reshape(-1)
    return float(np.var(rmse, ddof=1))


def _psnr(max_value: float = 255.0, mse_floor: float = 0.0):
    return Mean("psnr", lambda g, r: image_metrics.psnr(g, r, max_value=max_value,
                                                         mse_floor=mse_floor))


REGISTRY = {
    "psnr": _psnr,
    "b-psnr": lambda patch=16, max_value=1.0, mse_floor=0.0: Mean(
        "b-psnr", lambda g, r: boundary_psnr(g, r, patch, max_value, mse_floor)),
    "pev": lambda patch=16: Mean("pev", lambda g, r: patch_error_variance(g, r, patch)),
    "colorfulness": lambda scale=1.0: Mean(
        "colorfulness", lambda g: image_metrics.colorfulness(scale * g), paired=False),
    "lpips": lambda distance: Mean("lpips", distance, batched=True),
    "fid": Frechet,
}


def create(name: str, **options) -> Metric:
    """A new metric of the registry by name, with its options."""
    if name not in REGISTRY:
        raise ValueError(f"No metric {name!r}; the metrics are {', '.join(REGISTRY)}.")
    return REGISTRY[name](**options)
