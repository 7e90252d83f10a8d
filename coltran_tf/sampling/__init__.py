"""Sampling from the ColTran models."""

from coltran_tf.sampling.colorizer_sampler import NORM_CONTEXTS, SAMPLE_MODES, sample_colorizer

__all__ = ["NORM_CONTEXTS", "SAMPLE_MODES", "sample_colorizer"]
