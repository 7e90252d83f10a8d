"""ColTran color upsampler (3-bit -> 8-bit colours at 64x64), paper configuration.

  python -m coltran_tf.run --config=configs/color_upsampler.py --mode=train --logdir=DIR

Variants: configs/color_upsampler.py:tiny (hidden 32, 1 head, 1 layer) for tests;
:demo (hidden 64, 2 heads, 2 layers, data/'s colour photos) for the demo weights.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return common.upsampler_config(arg, "color_upsampler", num_layers=4, batch_size=24)
