"""Our own model format: a directory with the experiment config and the weights.

    DIR/config.json        the experiment config (original key names)
    DIR/model.weights.h5   Keras 3 weights of the model that config builds
    DIR/metadata.json      where the weights came from (e.g. a converted checkpoint)

Directories are written under a temporary name and renamed into place, so an
interrupted save never leaves a half-written model behind.
"""

import json
import os
import shutil
import tempfile

import ml_collections

from coltran_tf.models.builder import build_model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


def config_to_dict(config) -> dict:
    if isinstance(config, ml_collections.ConfigDict):
        return config.to_dict()
    return json.loads(json.dumps(config))


def save_model_dir(model, config, directory: str, metadata: dict | None = None,
                   overwrite: bool = False) -> str:
    """Writes `model` (built from `config`) to `directory`; returns the path."""
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and os.listdir(directory) and not overwrite:
        raise FileExistsError(f"{directory} already exists and is not empty; choose another "
                              "output directory or pass overwrite=True (--overwrite).")
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        with open(os.path.join(staging, CONFIG_FILE), "w") as f:
            json.dump(config_to_dict(config), f, indent=1, sort_keys=True)
        with open(os.path.join(staging, METADATA_FILE), "w") as f:
            json.dump(metadata or {}, f, indent=1, sort_keys=True)
        model.save_weights(os.path.join(staging, WEIGHTS_FILE))
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def is_model_dir(directory: str) -> bool:
    return all(os.path.isfile(os.path.join(directory, name))
               for name in (CONFIG_FILE, WEIGHTS_FILE))


def load_model_dir(directory: str, precision: str | None = None):
    """(model, config) from a directory written by `save_model_dir`, in the
    saved config's precision or `precision` (then also set in the config)."""
    if not is_model_dir(directory):
        raise FileNotFoundError(
            f"{directory!r} is not a coltran_tf model directory (expected {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}). Convert an original checkpoint with "
            "coltran-convert (python -m coltran_tf.commands.convert) first.")
    with open(os.path.join(directory, CONFIG_FILE)) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if precision:
        config.precision = precision
    model = build_model(config)
    model.load_weights(os.path.join(directory, WEIGHTS_FILE))
    return model, config
