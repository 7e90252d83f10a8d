"""iColoriT (Yun et al., WACV 2023): point-interactive colorization with a ViT.

Its own sub-package: ColTran code never imports it, and it imports nothing of
ColTran's (only the shared input pipeline and utils).
"""

import importlib

__all__ = ["PRESETS", "IColoriT", "build_icolorit"]


def __getattr__(name):  # lazy: the commands' --help needs no TensorFlow
    if name not in __all__:
        raise AttributeError(f"module 'coltran_tf.icolorit' has no attribute {name!r}")
    return getattr(importlib.import_module("coltran_tf.icolorit.model"), name)
