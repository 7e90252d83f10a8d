"""Frechet distance between Gaussians fitted to feature sets (FID: Heusel et al.
2017), with statistics streamed so no set's features are held at once.

  FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

Covariances are unbiased (ddof=1), as in the reference implementations (TTUR,
pytorch-fid). tr((S1 S2)^(1/2)) is the sum of the square roots of the
eigenvalues of S1^(1/2) S2 S1^(1/2), which is symmetric positive semi-definite
and has the eigenvalues of S1 S2; so near-singular products (fewer images than
feature dimensions) need no complex arithmetic. Eigenvalues that round below
zero are clipped; when they round far below it, `eps` is added to both
diagonals first, as TTUR does for a non-finite square root.
"""

import numpy as np


class RunningMoments:
    """Mean and covariance of feature vectors seen batch by batch, in float64.

    Sums are taken about a shift (the first batch's mean), which keeps the
    one-pass covariance accurate when the features are far from zero.
    """

    def __init__(self, dimensions: int | None = None):
        self.count = 0
        self.dimensions = dimensions
        self._shift = self._sum = self._outer = None

    def update(self, features) -> None:
        features = np.asarray(features, np.float64)
        if features.ndim != 2:
            features = features.reshape(features.shape[0], -1)
        if not len(features):
            return
        if self._shift is None:
            if self.dimensions is not None and features.shape[1] != self.dimensions:
                raise ValueError(f"Features have {features.shape[1]} dimensions, expected "
                                 f"{self.dimensions}.")
            self.dimensions = features.shape[1]
            self._shift = features.mean(axis=0)
            self._sum = np.zeros(self.dimensions)
            self._outer = np.zeros((self.dimensions, self.dimensions))
        elif features.shape[1] != self.dimensions:
            raise ValueError(f"Features changed from {self.dimensions} to "
                             f"{features.shape[1]} dimensions.")
        if not np.isfinite(features).all():
            raise ValueError("The feature extractor returned non-finite values.")
        centred = features - self._shift
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred
        self.count += len(features)

    @property
    def mean(self) -> np.ndarray:
        self._require(1)
        return self._shift + self._sum / self.count

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased (ddof=1) covariance."""
        self._require(2)
        centred_mean = self._sum / self.count
        return (self._outer - self.count * np.outer(centred_mean, centred_mean)) / (
            self.count - 1)

    def _require(self, count: int) -> None:
        if self.count < count:
            raise ValueError(f"{self.count} feature vectors seen; at least {count} are needed.")


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """tr((sigma1 sigma2)^(1/2)) of two covariance matrices."""
    for attempt in range(2):
        root = _symmetric_sqrt(sigma1)
        product = root @ sigma2 @ root
        values = np.linalg.eigvalsh((product + product.T) / 2)
        scale = max(float(np.abs(values).max(initial=0.0)), 1e-300)
        if values.min(initial=0.0) >= -1e-6 * scale or attempt:
            return float(np.sqrt(np.clip(values, 0, None)).sum())
        offset = eps * np.eye(len(sigma1))  # numerically indefinite: regularise and retry
        sigma1, sigma2 = sigma1 + offset, sigma2 + offset
    raise AssertionError("unreachable")


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(
        np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(
        np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or \
            sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"Statistics do not match: means {mu1.shape} and {mu2.shape}, "
                         f"covariances {sigma1.shape} and {sigma2.shape}.")
    difference = mu1 - mu2
    distance = (difference @ difference + np.trace(sigma1) + np.trace(sigma2)
                - 2.0 * trace_sqrt_product(sigma1, sigma2, eps))
    return float(max(distance, 0.0))


def fid_from_moments(generated: RunningMoments, reference: RunningMoments) -> float:
    return frechet_distance(generated.mean, generated.covariance, reference.mean,
                            reference.covariance)
