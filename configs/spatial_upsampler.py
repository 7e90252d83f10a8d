"""ColTran spatial upsampler (64x64 -> 256x256), paper configuration.

  python -m coltran_tf.run --config=configs/spatial_upsampler.py --mode=train --logdir=DIR

The output resolution is config.resolution (any square size, e.g.
--config.resolution='(128, 128)'). Variants: configs/spatial_upsampler.py:tiny
(tests); :demo (hidden 64, 2 heads, 2 layers, 64 -> 128, data/'s colour photos)
for the demo weights.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return common.upsampler_config(arg, "spatial_upsampler", num_layers=3, batch_size=1)
