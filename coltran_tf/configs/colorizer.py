"""Preset `colorizer`: ColTran core (the autoregressive colorizer), paper size.

  coltran-train --config=colorizer --mode=train --logdir=DIR

Variants (comma-separated after a colon):
  colorizer:tiny           hidden 32, 1 head, one layer of each kind (tests)
  colorizer:demo           hidden 64, 2 heads, on data/'s colour photos (demo weights)
  colorizer:baseline       ColTran-B: conditioning by addition only
  colorizer:tiny,baseline
Any key can be overridden, e.g. --config.model.decoder.cond_mlp=shift.
"""

import ml_collections

from coltran_tf.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.parse_arg(arg)
    common.check_size_variants(variants)
    tiny, demo = "tiny" in variants, "demo" in variants
    config = common.training_defaults(batch_size=2 if tiny else 4 if demo else 7,
                                      max_train_steps=450000, tiny=tiny, demo=demo)
    if demo:
        config.max_train_steps = 2500  # the bundled demo weights (coltran_tf/demo/README.md)
    hidden = 32 if tiny else 64 if demo else 512
    heads = 1 if tiny else 2 if demo else 4
    config.model = ml_collections.ConfigDict({
        "name": "coltran_core",
        "hidden_size": hidden,
        "stage": "encoder_decoder",
        "resolution": [64, 64],
        "encoder": {
            "dropout": 0.0, "ff_size": hidden, "hidden_size": hidden, "num_heads": heads,
            "num_encoder_layers": 1 if tiny else 2 if demo else 4,
        },
        "decoder": {
            "dropout": 0.0, "ff_size": hidden, "hidden_size": hidden, "num_heads": heads,
            "num_inner_layers": 1 if tiny or demo else 2,
            "num_outer_layers": 1 if tiny or demo else 2,
            "resolution": [64, 64], "skip": True,
            "cond_mlp": "affine", "cond_mlp_act": "identity",
            "cond_ln": True, "cond_ln_act": "identity", "cond_ln_seq": "sc",
            "cond_ln_sp_ave": "learnable", "cond_ln_init": "glorot_uniform",
            "cond_att_act": "identity", "cond_att_init": "glorot_uniform",
            "cond_att_q": True, "cond_att_k": True, "cond_att_v": True,
            "cond_att_scale": True,
        },
    })
    if "baseline" in variants:
        decoder = config.model.decoder
        decoder.cond_mlp = ""
        decoder.cond_ln = False
        decoder.cond_att_q = decoder.cond_att_k = decoder.cond_att_v = False
    config.loss_factor = 0.99
    config.encoder_loss_factor = 0.01
    config.sample = common.sample_config(log_dir="", mode="sample", with_gen_data_dir=False)
    return config
