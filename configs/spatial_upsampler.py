"""ColTran spatial upsampler (64x64 -> 256x256), the paper's experiment.

  coltran-train --config=configs/spatial_upsampler.py --mode=train --logdir=DIR

Builds on the package's preset (coltran_tf/configs/spatial_upsampler.py, also
reachable as --config=spatial_upsampler). Variants: tiny (tests), demo
(64 -> 128). Any square output size: --config.resolution='(128, 128)'.
"""

from coltran_tf.configs import get_preset


def get_config(arg: str | None = None):
    return get_preset("spatial_upsampler", arg or "")
