"""Preset `spatial_upsampler`: ColTran spatial upsampler (64x64 -> 256x256), paper configuration.

  coltran-train --config=spatial_upsampler --mode=train --logdir=DIR

The output resolution is config.resolution (any square size, e.g.
--config.resolution='(128, 128)'). Variants: spatial_upsampler:tiny
(tests); :demo (hidden 64, 2 heads, 2 layers, 64 -> 128, data/'s colour photos)
for the demo weights.
"""

import ml_collections

from coltran_tf.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    # Its demo works at 64 -> 128: a quarter of the paper's cost per image.
    return common.upsampler_config(arg, "spatial_upsampler", num_layers=3, batch_size=1,
                                   demo_steps=800, demo_resolution=128)
