"""Finding the model of one ColTran stage from whatever a user points at.

A stage's path may be
  * a model directory of ours (config.json + model.weights.h5, e.g. a
    training run's `export/` or the output of coltran-convert),
  * a training logdir of ours (config.json + ckpt-N files; the EMA weights of
    its newest checkpoint),
  * an original ColTran checkpoint, directory or prefix (the released
    `colorizer/`, `color_upsampler/`, `spatial_upsampler/`), converted on the
    fly. It holds no config, so the model is built from a config: by default
    the paper preset of that stage,
  * `released[:STAGE]` or an http(s)/gs URL of an archive in the release's
    layout: fetched and converted once into the cache (checkpoints.released).
"""

import json
import os

import ml_collections

from coltran_tf.checkpoints.native import CONFIG_FILE, is_model_dir, load_model_dir
from coltran_tf.checkpoints.reference import ReferenceCheckpointMismatch
from coltran_tf.configs import ConfigError, load_config
from coltran_tf.models.builder import build_model

# stage name (flag, release directory and preset) -> model name
STAGES = {
    "colorizer": "coltran_core",
    "color_upsampler": "color_upsampler",
    "spatial_upsampler": "spatial_upsampler",
}


class StageError(ValueError):
    """A stage's model cannot be found, built or loaded; the message says why."""


def _is_training_logdir(path: str) -> bool:
    import tensorflow as tf

    return (os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILE))
            and tf.train.latest_checkpoint(path) is not None)


def load_stage(stage: str, path: str, config_spec: str | None = None, report=print):
    """(model, config, description) of one stage.

    Args:
      stage: "colorizer", "color_upsampler" or "spatial_upsampler".
      path: see the module docstring.
      config_spec: config of an original checkpoint, FILE[:variant] or a
        preset (default: the stage's paper preset); ignored when `path`
        carries its own config.
      report: progress lines of a download go here.

    Raises:
      StageError naming the stage, the path and the fix; FetchError when a
      released archive cannot be fetched.
    """
    from coltran_tf.checkpoints.released import is_remote, released_stage_dir
    from coltran_tf.train.state import CheckpointMismatch, load_for_inference

    expected, default_config = STAGES[stage], stage
    flag = f"--{stage}={path}"
    remote = path if is_remote(path) else None
    if remote:
        path = released_stage_dir(remote, stage, config_spec, report)
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise StageError(f"{flag}: no such file or directory. Point it at a model directory, "
                         "a training logdir of ours, or an original ColTran checkpoint "
                         f"directory (the release's {stage}/).")
    try:
        if is_model_dir(path):
            model, config = load_model_dir(path)
            description = (f"{remote} (converted, cached in {path})" if remote
                           else f"model directory {path}")
        else:
            if _is_training_logdir(path):
                with open(os.path.join(path, CONFIG_FILE)) as f:
                    config = ml_collections.ConfigDict(json.load(f))
            else:
                config = load_config(config_spec or default_config, stage)
            model, description = load_for_inference(build_model(config), config, path)
    except (ReferenceCheckpointMismatch, CheckpointMismatch) as error:
        raise StageError(
            f"{flag} does not match the {expected} of "
            f"{config_spec or default_config}:\n{error}\nIf it is another size or variant, "
            f"pass its config with --{stage}_config=FILE[:variant] or a preset (tiny, paper, "
            "baseline, demo); if it is another stage's "
            "checkpoint, check the directory.") from error
    except (FileNotFoundError, OSError, ValueError, ConfigError) as error:
        raise StageError(f"{flag}: {error}") from error
    if model.name != expected:
        raise StageError(f"{flag} holds a {model.name} model, but the {stage} stage needs a "
                         f"{expected}; check which directory goes with which stage.")
    return model, config, description
