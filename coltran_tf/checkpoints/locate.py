"""Finding the model of one ColTran stage from whatever a user points at.

A stage's path may be
  * a model directory of ours (config.json + model.weights.h5, e.g. a
    training run's `export/` or the output of convert_reference_checkpoint),
  * a training logdir of ours (config.json + ckpt-N files; the EMA weights of
    its newest checkpoint),
  * an original ColTran checkpoint, directory or prefix (the released
    `colorizer/`, `color_upsampler/`, `spatial_upsampler/`), converted on the
    fly. It holds no config, so the model is built from a config file: by
    default the paper config of that stage.
"""

import importlib.util
import json
import os
import sys

import ml_collections

from coltran_tf.checkpoints.native import CONFIG_FILE, is_model_dir, load_model_dir
from coltran_tf.checkpoints.reference import ReferenceCheckpointMismatch
from coltran_tf.models.builder import build_model

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# stage name (flag and release directory) -> model name, paper config file
STAGES = {
    "colorizer": ("coltran_core", "configs/colorizer.py"),
    "color_upsampler": ("color_upsampler", "configs/color_upsampler.py"),
    "spatial_upsampler": ("spatial_upsampler", "configs/spatial_upsampler.py"),
}


class StageError(ValueError):
    """A stage's model cannot be found, built or loaded; the message says why."""


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """'configs/colorizer.py[:variant]' -> the config its get_config returns.

    A .json file holds the config itself (as in a model directory's
    config.json). Relative paths are tried from the working directory, then
    the repository.
    """
    path, _, arg = spec.partition(":")
    candidates = [path, os.path.join(REPO_ROOT, path)]
    found = next((p for p in candidates if os.path.isfile(p)), None)
    if found is None:
        raise StageError(f"Config file {path!r} not found (looked in the working directory "
                         f"and in {REPO_ROOT}).")
    if found.endswith(".json"):
        with open(found) as f:
            return ml_collections.ConfigDict(json.load(f))
    module_spec = importlib.util.spec_from_file_location("_stage_config", found)
    module = importlib.util.module_from_spec(module_spec)
    if REPO_ROOT not in sys.path:  # the config files import `configs.common`
        sys.path.insert(0, REPO_ROOT)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def _is_training_logdir(path: str) -> bool:
    import tensorflow as tf

    return (os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILE))
            and tf.train.latest_checkpoint(path) is not None)


def load_stage(stage: str, path: str, config_spec: str | None = None):
    """(model, config, description) of one stage.

    Args:
      stage: "colorizer", "color_upsampler" or "spatial_upsampler".
      path: see the module docstring.
      config_spec: config file for an original checkpoint (default: the
        stage's paper config); ignored when `path` carries its own config.

    Raises:
      StageError naming the stage, the path and the fix.
    """
    from coltran_tf.train.state import CheckpointMismatch, load_for_inference

    expected, default_config = STAGES[stage]
    flag = f"--{stage}={path}"
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise StageError(f"{flag}: no such file or directory. Point it at a model directory, "
                         "a training logdir of ours, or an original ColTran checkpoint "
                         f"directory (the release's {stage}/).")
    try:
        if is_model_dir(path):
            model, config = load_model_dir(path)
            description = f"model directory {path}"
        else:
            if _is_training_logdir(path):
                with open(os.path.join(path, CONFIG_FILE)) as f:
                    config = ml_collections.ConfigDict(json.load(f))
            else:
                config = load_config_file(config_spec or default_config)
            model, description = load_for_inference(build_model(config), config, path)
    except (ReferenceCheckpointMismatch, CheckpointMismatch) as error:
        raise StageError(
            f"{flag} does not match the {expected} of "
            f"{config_spec or default_config}:\n{error}\nIf it is another size or variant, "
            f"pass its config with --{stage}_config=FILE[:variant]; if it is another stage's "
            "checkpoint, check the directory.") from error
    except (FileNotFoundError, OSError, ValueError) as error:
        raise StageError(f"{flag}: {error}") from error
    if model.name != expected:
        raise StageError(f"{flag} holds a {model.name} model, but the {stage} stage needs a "
                         f"{expected}; check which directory goes with which stage.")
    return model, config, description
