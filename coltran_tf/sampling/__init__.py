"""Sampling from the ColTran models.

`sample_colorizer` (the cached sampler by default; `SamplerOptions` selects the
original algorithm, `sample_colorizer_loop`) draws coarse colours; the
`Pipeline` (sampling/pipeline.py) chains the three stages. Exports load
lazily, so that importing `coltran_tf.sampling.options` stays light.
"""

import importlib

_EXPORTS = {
    "sample_colorizer": "coltran_tf.sampling.cached_sampler",
    "sample_colorizer_cached": "coltran_tf.sampling.cached_sampler",
    "sample_colorizer_loop": "coltran_tf.sampling.colorizer_sampler",
    "SamplerOptions": "coltran_tf.sampling.options",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'coltran_tf.sampling' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
