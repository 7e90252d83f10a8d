"""iColoriT training: iColoriT-T on ImageNet, the paper's recipe.

  icolorit-train --config=configs/icolorit.py --logdir=DIR

Builds on the package's preset (coltran_tf/configs/icolorit.py, also reachable
as --config=icolorit). Variants: tiny (a micro model on data/, tests), S, B,
T-patch8, T-patch32, demo; e.g. configs/icolorit.py:S. Any key can be
overridden: --config.batch_size=64 --config.data.data_dir=/photos.
"""

from coltran_tf.configs import get_preset


def get_config(arg: str | None = None):
    return get_preset("icolorit", arg or "")
