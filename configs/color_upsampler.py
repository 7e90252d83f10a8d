"""ColTran color upsampler (3-bit -> 8-bit colours at 64x64), paper configuration.

  python -m coltran_tf.run --config=configs/color_upsampler.py --mode=train --logdir=DIR

Variant: configs/color_upsampler.py:tiny (hidden 32, 1 head, 1 layer) for tests.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.parse_arg(arg)
    if "baseline" in variants:
        raise ValueError("The 'baseline' variant applies to configs/colorizer.py only.")
    tiny = "tiny" in variants
    config = common.training_defaults(batch_size=24, max_train_steps=300000)
    config.random_channel = True
    hidden = 32 if tiny else 512
    config.model = ml_collections.ConfigDict({
        "name": "color_upsampler", "hidden_size": hidden, "ff_size": hidden,
        "num_heads": 1 if tiny else 4, "num_encoder_layers": 1 if tiny else 4,
        "resolution": [64, 64],
    })
    config.sample = common.sample_config(log_dir="samples_sweep", mode="argmax",
                                         with_gen_data_dir=True)
    return config
