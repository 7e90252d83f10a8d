"""ColTran color upsampler (3-bit -> 8-bit colours at 64x64), the paper's experiment.

  coltran-train --config=configs/color_upsampler.py --mode=train --logdir=DIR

Builds on the package's preset (coltran_tf/configs/color_upsampler.py, also
reachable as --config=color_upsampler). Variants: tiny (tests), demo.
"""

from coltran_tf.configs import get_preset


def get_config(arg: str | None = None):
    return get_preset("color_upsampler", arg or "")
