"""Shared pieces of the ColTran experiment configs (original key names)."""

import ml_collections

from coltran_tf.configs.sampler import SamplerOptions

VARIANTS = ("tiny", "baseline", "demo")
PAPER = "paper"  # no variant: the paper's configuration


def parse_arg(arg: str | None) -> set:
    """'tiny,baseline' -> {'tiny', 'baseline'} ('paper' adds none); rejects unknown
    variants."""
    variants = {a.strip() for a in (arg or "").split(",") if a.strip()} - {PAPER}
    unknown = sorted(variants - set(VARIANTS))
    if unknown:
        raise ValueError(f"Unknown config variant(s) {unknown}; choose from {list(VARIANTS)} "
                         "(comma-separated, e.g. --config=colorizer:tiny).")
    return variants


def training_defaults(batch_size: int, max_train_steps: int, tiny: bool = False,
                      demo: bool = False) -> ml_collections.ConfigDict:
    """Top-level keys every ColTran experiment has (the original's, Kumar et al.
    2021, App. A: RMSprop at 3e-4, Polyak averaging 0.999, 256 px crops, 64 px
    colorizer inputs).

    The original's keys keep their names; ours are `random_channel` (set by
    the upsamplers), `seed`, `data.*` (where images come from and how they are split),
    `checkpoints_to_keep`, `jit_compile` and `precision`.
    """
    config = ml_collections.ConfigDict()
    # imagenet | folder | tfrecord | bundled (the photographs in data/).
    config.dataset = "bundled" if tiny else "imagenet"
    config.data = ml_collections.ConfigDict({
        "data_dir": "",       # folder root, TFRecord file/dir/glob, or TFDS data_dir
        "manual_dir": "",     # ImageNet tars (default: <TFDS data_dir>/downloads/manual)
        "valid_percent": 5.0,  # folder/tfrecord: share of images in the valid split
        "test_percent": 5.0,   # ... and in the test split
        "shuffle_buffer": 128,
        "skip_grayscale": False,  # train on colour photos only (grayscale ones teach grey)
    })
    config.seed = 0  # model initialisation, shuffling, crops and channel slices
    config.random_channel = False
    config.downsample = True
    config.downsample_res = 64
    config.resolution = [256, 256]
    config.batch_size = batch_size
    config.max_train_steps = max_train_steps
    config.save_checkpoint_secs = 900
    config.save_checkpoint_steps = 0  # also every this many steps (0: by time only)
    config.num_epochs = -1
    config.polyak_decay = 0.999
    config.export_weights = "ema"  # or "raw": what --mode=export and the end of training write
    config.eval_num_examples = 20000
    config.eval_batch_size = 16
    config.eval_checkpoint_wait_secs = -1
    config.optimizer = ml_collections.ConfigDict({"type": "rmsprop", "learning_rate": 3e-4})
    config.checkpoints_to_keep = 10
    config.jit_compile = False  # XLA for the per-replica train step (see benchmark_train)
    # float32 | bfloat16 (mixed: float32 variables, bfloat16 compute) | auto.
    config.precision = "float32"
    if tiny:
        config.save_checkpoint_secs = 60
        config.eval_num_examples = 12
        config.eval_batch_size = 4
        config.max_train_steps = 200
    if demo:  # the bundled demo weights: small models, the colour photos of data/, a CPU
        config.dataset = "bundled"
        config.data.skip_grayscale = True
        config.save_checkpoint_secs = 300
        config.eval_num_examples = 9
        config.eval_batch_size = 3
        config.checkpoints_to_keep = 2
        # A 0.999 average of a few thousand steps still holds much of the initial
        # weights (0.999^800 = 45%); the demo exports the trained weights.
        config.export_weights = "raw"
    return config


def check_size_variants(variants: set) -> None:
    if {"tiny", "demo"} <= variants:
        raise ValueError("Pick one of the 'tiny' and 'demo' sizes.")


def sample_config(log_dir: str, mode: str, with_gen_data_dir: bool) -> ml_collections.ConfigDict:
    """The `config.sample` block of the staged sampler (the original's keys)."""
    sample = ml_collections.ConfigDict({
        "num_outputs": 1, "num_samples": 1, "batch_size": 1, "mode": mode,
        "skip_batches": 0, "gen_file": "gen0", "log_dir": log_dir,
    })
    if with_gen_data_dir:
        sample.gen_data_dir = ""
    else:  # the colorizer's sampler options (configs/sampler.py holds their defaults)
        sample.update({**SamplerOptions().as_dict(), "save_uncertainty": False})
    return sample


def upsampler_config(arg, name: str, num_layers: int, batch_size: int, demo_steps: int,
                     demo_resolution: int = 256):
    """Color or spatial upsampler config (the two differ only in these values;
    demo_*: the training steps and final resolution of the bundled demo
    weights, coltran_tf/demo/README.md)."""
    variants = parse_arg(arg)
    if "baseline" in variants:
        raise ValueError("The 'baseline' variant applies to the colorizer only.")
    check_size_variants(variants)
    tiny, demo = "tiny" in variants, "demo" in variants
    config = training_defaults(batch_size=2 if tiny else 4 if demo else batch_size,
                               max_train_steps=300000, tiny=tiny, demo=demo)
    config.random_channel = True
    hidden = 32 if tiny else 64 if demo else 512
    config.model = ml_collections.ConfigDict({
        "name": name, "hidden_size": hidden, "ff_size": hidden,
        "num_heads": 1 if tiny else 2 if demo else 4,
        "num_encoder_layers": 1 if tiny else 2 if demo else num_layers,
        "resolution": [64, 64],
    })
    if demo:
        config.max_train_steps = demo_steps
        config.resolution = [demo_resolution, demo_resolution]
    config.sample = sample_config(log_dir="samples_sweep", mode="argmax", with_gen_data_dir=True)
    return config
