"""Shared pieces of the ColTran experiment configs (original key names)."""

import ml_collections

VARIANTS = ("tiny", "baseline")


def parse_arg(arg: str | None) -> set:
    """'tiny,baseline' -> {'tiny', 'baseline'}; rejects unknown variants."""
    variants = {a.strip() for a in (arg or "").split(",") if a.strip()}
    unknown = sorted(variants - set(VARIANTS))
    if unknown:
        raise ValueError(f"Unknown config variant(s) {unknown}; choose from {list(VARIANTS)} "
                         "(comma-separated, e.g. --config=configs/colorizer.py:tiny).")
    return variants


def training_defaults(batch_size: int, max_train_steps: int) -> ml_collections.ConfigDict:
    """Top-level keys every ColTran experiment has (spec COLTRAN.md §7)."""
    config = ml_collections.ConfigDict()
    config.dataset = "imagenet"
    config.downsample = True
    config.downsample_res = 64
    config.resolution = [256, 256]
    config.batch_size = batch_size
    config.max_train_steps = max_train_steps
    config.save_checkpoint_secs = 900
    config.num_epochs = -1
    config.polyak_decay = 0.999
    config.eval_num_examples = 20000
    config.eval_batch_size = 16
    config.eval_checkpoint_wait_secs = -1
    config.optimizer = ml_collections.ConfigDict({"type": "rmsprop", "learning_rate": 3e-4})
    return config


def sample_config(log_dir: str, mode: str, with_gen_data_dir: bool) -> ml_collections.ConfigDict:
    """The `config.sample` block of the staged sampler (spec §8)."""
    sample = ml_collections.ConfigDict({
        "num_outputs": 1, "num_samples": 1, "batch_size": 1, "mode": mode,
        "skip_batches": 0, "gen_file": "gen0", "log_dir": log_dir,
    })
    if with_gen_data_dir:
        sample.gen_data_dir = ""
    return sample


def upsampler_config(arg, name: str, num_layers: int, batch_size: int):
    """Color or spatial upsampler config (the two differ only in these values)."""
    variants = parse_arg(arg)
    if "baseline" in variants:
        raise ValueError("The 'baseline' variant applies to configs/colorizer.py only.")
    tiny = "tiny" in variants
    config = training_defaults(batch_size=batch_size, max_train_steps=300000)
    config.random_channel = True
    hidden = 32 if tiny else 512
    config.model = ml_collections.ConfigDict({
        "name": name, "hidden_size": hidden, "ff_size": hidden,
        "num_heads": 1 if tiny else 4, "num_encoder_layers": 1 if tiny else num_layers,
        "resolution": [64, 64],
    })
    config.sample = sample_config(log_dir="samples_sweep", mode="argmax", with_gen_data_dir=True)
    return config
