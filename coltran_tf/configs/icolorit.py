"""Preset `icolorit`: iColoriT training (Yun et al. 2023, Sec. 4.1), iColoriT-T on
ImageNet by default.

  icolorit-train --config=icolorit --logdir=DIR

Variants (comma-separated after a colon):
  icolorit:tiny     a micro model (hidden 32, one block) on data/ (tests)
  icolorit:S        iColoriT-S;  icolorit:B  iColoriT (ViT-B)
  icolorit:T-patch8 / T-patch32   the patch-size ablations
  icolorit:demo     iColoriT-T briefly on data/'s colour photos (demo weights)
Any key can be overridden, e.g. --config.batch_size=64 --config.data.data_dir=/photos.
"""

import ml_collections

SIZES = ("T", "S", "B", "T-patch8", "T-patch32")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = {a.strip() for a in (arg or "").split(",") if a.strip()} - {"paper"}
    unknown = sorted(variants - {"tiny", "demo", *SIZES})
    if unknown:
        raise ValueError(f"Unknown config variant(s) {unknown}; choose from "
                         f"{['tiny', 'demo', *SIZES]} (e.g. --config=icolorit:S).")
    sizes = sorted(variants & set(SIZES))
    if len(sizes) > 1:
        raise ValueError(f"Pick one model size, got {sizes}.")
    tiny = "tiny" in variants
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict({
        "preset": "micro" if tiny else (sizes[0] if sizes else "T"),
        "drop_path": 0.0,
    })
    # imagenet | folder | tfrecord | bundled (the photographs in data/).
    config.dataset = "bundled" if tiny else "imagenet"
    config.data = ml_collections.ConfigDict({
        "data_dir": "", "manual_dir": "", "valid_percent": 5.0, "test_percent": 5.0,
        "shuffle_buffer": 64 if tiny else 1024,
        "skip_grayscale": False,  # train on colour photos only (grayscale ones teach grey)
    })
    config.image_size = 224
    config.crop_scale = (0.08, 1.0)       # RandomResizedCrop area range
    config.crop_ratio = (3 / 4, 4 / 3)    # ... and aspect-ratio range
    config.max_hints = 128                # hints per image ~ U{0..max_hints}
    config.batch_size = 4 if tiny else 256
    config.max_train_steps = 30 if tiny else 25 * 5004   # Tiny: 25 epochs at batch 256
    config.warmup_steps = 5 if tiny else 3 * 5004        # 3 epochs
    config.learning_rate = 5e-4
    config.min_learning_rate = 1e-5
    config.weight_decay = 0.05            # on >= 2-D weights only
    config.beta_1, config.beta_2, config.epsilon = 0.9, 0.95, 1e-8
    config.huber_delta = 0.01
    config.seed = 4885
    config.steps_per_log = 5 if tiny else 100
    config.save_checkpoint_steps = 10 if tiny else 5000
    config.checkpoints_to_keep = 3
    # float32 | bfloat16 (mixed: float32 variables, optimizer and loss) | auto.
    config.precision = "float32"
    if "demo" in variants:  # the bundled demo weights: a CPU, the colour photos of data/
        if tiny:
            raise ValueError("Pick one of the 'tiny' and 'demo' variants.")
        config.dataset = "bundled"
        config.data.skip_grayscale = True
        config.data.shuffle_buffer = 64
        config.batch_size = 8
        # tools/train_demo_weights.sh trains on tools/make_hint_training_set.py's images
        # (colours the grey levels do not tell, so hints matter), not on data/ alone.
        config.max_train_steps = 3000
        config.warmup_steps = 100
        config.learning_rate = 1e-3
        config.steps_per_log = 50
        config.save_checkpoint_steps = 250
    return config
