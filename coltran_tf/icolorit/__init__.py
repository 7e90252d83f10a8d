"""iColoriT (Yun et al., WACV 2023): point-interactive colorization with a ViT.

Its own sub-package: ColTran code never imports it. Facts: ../shared/spec/ICOLORIT.md.
"""

from coltran_tf.icolorit.model import PRESETS, IColoriT, build_icolorit

__all__ = ["PRESETS", "IColoriT", "build_icolorit"]
