"""One loader for every form of ColTran model a user points at.

`load_model(path, ...)` takes
  * a model directory of ours (config.json + model.weights.h5: a training
    run's `export/`, coltran-convert's output, the demo weights, the cache),
  * a training logdir of ours (config.json + ckpt-N files: the EMA weights of
    its newest checkpoint) or one training checkpoint (prefix),
  * an original ColTran checkpoint, directory or prefix (the released
    `colorizer/`, ...), converted on the fly. It holds no config, so the model
    is built from `config`, by default the stage's paper preset,
  * `released[:STAGE]` or an http(s)/gs URL of an archive in the release's
    layout: fetched and converted once into the cache (checkpoints.released).
"""

import json
import os

import ml_collections

from coltran_tf.checkpoints.native import CONFIG_FILE, is_model_dir, load_model_dir
from coltran_tf.checkpoints.reference import (
    ReferenceCheckpointMismatch,
    load_reference_checkpoint,
    resolve_checkpoint_path,
)
from coltran_tf.configs import ConfigError, load_config, stages
from coltran_tf.models.builder import build_model
from coltran_tf.utils.precision import model_precision as precision_of


class CheckpointMismatch(ValueError):
    """A checkpoint that does not fit the model of the given config."""


class StageError(ValueError):
    """A stage's model cannot be found, built or loaded; the message says why."""


def is_training_checkpoint(prefix: str) -> bool:
    """True for checkpoints written by our trainer (they hold `ema/shadows`)."""
    import tensorflow as tf

    return any(name.startswith("ema/shadows/") for name, _ in tf.train.list_variables(prefix))


def _is_training_logdir(path: str) -> bool:
    import tensorflow as tf

    return (os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILE))
            and tf.train.latest_checkpoint(path) is not None)


def restore_ema(model, prefix: str) -> None:
    """Loads the EMA (Polyak) weights of one of our training checkpoints into a
    built model of its config; the optimizer state is not read."""
    import tensorflow as tf

    class _Shadows(tf.Module):  # the checkpoint layout of train.optimizers.PolyakAverage
        def __init__(self, variables):
            super().__init__(name="ema")
            self.shadows = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False)
                            for v in variables]

    ema = _Shadows(model.trainable_variables)
    try:
        status = tf.train.Checkpoint(model=model, ema=ema).restore(prefix)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise CheckpointMismatch(
            f"The training checkpoint {prefix} does not match the model of this config "
            f"({error}); use it with the config it was trained with.") from error
    status.expect_partial()  # the optimizer slots are not needed here
    for variable, shadow in zip(model.trainable_variables, ema.shadows):
        variable.assign(shadow)


def load_weights(model, path: str) -> tuple:
    """(model, description) with `path`'s weights (EMA where there are some) in
    a model built from its config; a model directory gives its own model (in
    `model`'s precision)."""
    if is_model_dir(path):
        loaded, _ = load_model_dir(path, precision_of(model))
        return loaded, f"model directory {path}"
    prefix = resolve_checkpoint_path(path)
    if is_training_checkpoint(prefix):
        restore_ema(model, prefix)
        return model, f"training checkpoint {prefix} (EMA)"
    load_reference_checkpoint(model, prefix, use_ema=True)
    return model, f"original ColTran checkpoint {prefix} (EMA)"


def load_model(path: str, config=None, stage: str | None = None, report=print,
               precision: str | None = None) -> tuple:
    """(model, config, description) of whatever `path` is (module docstring).

    Args:
      path: the model, in any of the forms above.
      config: a ConfigDict, or a config spec (FILE[:variant], a preset, or
        only variants with `stage`) for forms that hold no config: original
        checkpoints, training checkpoint prefixes, archives. Default: the
        stage's paper preset.
      stage: "colorizer", "color_upsampler" or "spatial_upsampler": the model
        must be of that stage; errors name its flag (--STAGE=PATH).
      report: progress lines of a download go here.
      precision: "float32", "bfloat16" or "auto" overrides the config's
        `precision` (the returned config holds the one used).

    Raises:
      StageError naming the path, what it should be and the fix; FetchError
      when a released archive cannot be fetched.
    """
    from coltran_tf import demo
    from coltran_tf.checkpoints.released import is_remote, released_stage_dir

    flag = f"--{stage}={path}" if stage else path
    try:
        path = demo.resolve(path, stage or (None if path == demo.DEMO else _stage_of(config)))
    except (ValueError, demo.DemoWeightsMissing) as error:
        raise StageError(str(error)) from None
    spec = config if isinstance(config, str) else None
    remote = path if is_remote(path) else None
    if remote:
        path = released_stage_dir(remote, stage or _stage_of(config), config, report)
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise StageError(f"{flag}: no such file or directory. Point it at a model directory, "
                         "a training logdir of ours, or an original ColTran checkpoint "
                         f"directory (the release's {stage or 'colorizer'}/).")
    try:
        if is_model_dir(path):
            model, config = load_model_dir(path, precision)
            description = (f"{remote} (converted, cached in {path})" if remote
                           else f"model directory {path}")
        else:
            if _is_training_logdir(path):
                with open(os.path.join(path, CONFIG_FILE)) as f:
                    config = ml_collections.ConfigDict(json.load(f))
            elif config is None or spec is not None:
                config = load_config(spec or stage or "colorizer", stage)
            if precision:
                config = ml_collections.ConfigDict(config.to_dict())
                config.precision = precision
            model, description = load_weights(build_model(config), path)
    except (ReferenceCheckpointMismatch, CheckpointMismatch) as error:
        hint = (f"pass its config with --{stage}_config=FILE[:variant] or a preset (tiny, "
                "paper, baseline, demo)" if stage else "pass the config it was trained with")
        raise StageError(
            f"{flag} does not match the model of {spec or 'this config'}:\n{error}\nIf it is "
            f"another size or variant, {hint}; if it is another stage's checkpoint, check the "
            "directory.") from error
    except (FileNotFoundError, OSError, ValueError, ConfigError) as error:
        raise StageError(f"{flag}: {error}") from error
    if stage and model.name != stages.get(stage).model_name:
        raise StageError(f"{flag} holds a {model.name} model, but the {stage} stage needs a "
                         f"{stages.get(stage).model_name}; check which directory goes with "
                         "which stage.")
    return model, config, description


def _stage_of(config) -> str:
    if config is None or isinstance(config, str):
        return "colorizer"
    return stages.of_model_name(config.model.name).name
