"""Preset `color_upsampler`: ColTran color upsampler (3-bit -> 8-bit colours at
64x64), paper configuration.

  coltran-train --config=color_upsampler --mode=train --logdir=DIR

Variants: color_upsampler:tiny (hidden 32, 1 head, 1 layer) for tests;
:demo (hidden 64, 2 heads, 2 layers, data/'s colour photos) for the demo weights.
"""

import ml_collections

from coltran_tf.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return common.upsampler_config(arg, "color_upsampler", num_layers=4, batch_size=24,
                                   demo_steps=2000)
