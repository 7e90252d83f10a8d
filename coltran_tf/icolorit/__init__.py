"""iColoriT (Yun et al., WACV 2023): point-interactive colorization with a ViT.

Its own sub-package: ColTran code never imports it, and it imports nothing of
ColTran's (only the shared input pipeline and utils).
"""

from coltran_tf.icolorit.model import PRESETS, IColoriT, build_icolorit

__all__ = ["PRESETS", "IColoriT", "build_icolorit"]
