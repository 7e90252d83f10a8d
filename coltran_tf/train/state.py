"""Model, optimizer, Polyak average and their checkpoint, built in one place."""

import os
from dataclasses import dataclass

import keras
import tensorflow as tf

from coltran_tf.checkpoints.loading import CheckpointMismatch
from coltran_tf.checkpoints.native import save_model_dir
from coltran_tf.data import sources
from coltran_tf.models.builder import build_model
from coltran_tf.train import loop
from coltran_tf.train.optimizers import PolyakAverage, build_optimizer

EXPORT_DIR = "export"


@dataclass
class TrainState:
    """Everything a training checkpoint holds (step = optimizer.iterations): the
    model, the optimizer, the EMA, the seed generators' states and the training
    stream's position (train/loop.py: what an exact resume needs)."""
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    ema: PolyakAverage
    checkpoint: tf.train.Checkpoint
    stream: loop.StreamPosition

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())


def build_train_state(config, strategy: tf.distribute.Strategy | None = None) -> TrainState:
    """Builds model, optimizer slots and EMA shadows under `strategy`'s scope.

    Optimizer slots are created now, not at the first step, so that a restore
    assigns them immediately instead of relying on deferred restoration.
    """
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(int(config.seed))
    with strategy.scope():
        model = build_model(config)
        optimizer = build_optimizer(config.optimizer)
        optimizer.build(model.trainable_variables)
        ema = PolyakAverage(model.trainable_variables, decay=config.polyak_decay)
    stream = loop.StreamPosition(strategy, sources.describe_position)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, ema=ema,
                                     random=loop.random_state(model), stream=stream.variable)
    return TrainState(model, optimizer, ema, checkpoint, stream)


def mismatch_error(logdir: str):
    """(path, error) -> the CheckpointMismatch for a checkpoint of `logdir` that
    does not fit the config's model."""
    def error(path, cause):
        return CheckpointMismatch(
            f"The checkpoint {path} does not match this config ({cause}). It was written by "
            "another model or config: resume with the config it was trained with, or start a "
            f"new run with another --logdir (nothing was changed in {logdir}).")
    return error


def restore_latest(state: TrainState, logdir: str) -> str | None:
    """Restores the newest training checkpoint of `logdir`; returns its path."""
    return loop.restore_latest(state.checkpoint, logdir, mismatch_error(logdir))


EXPORT_WEIGHTS = ("ema", "raw")


def export_kind(config) -> str:
    """config.export_weights: "ema" (the Polyak average, default, as the original
    evaluates) or "raw" (the trained weights themselves: for short runs, where
    an average that starts from the initial weights still holds much of them,
    e.g. 0.999^800 = 45% after 800 steps)."""
    kind = config.get("export_weights", "ema")
    if kind not in EXPORT_WEIGHTS:
        raise ValueError(f"config.export_weights={kind!r}; choose one of {EXPORT_WEIGHTS}.")
    return kind


def export_model(state: TrainState, config, directory: str,
                 metadata: dict | None = None) -> str:
    """Writes the EMA (or raw, see export_kind) weights as a model directory
    (config.json + model.weights.h5).

    The model's raw weights are restored afterwards, so training can go on.
    """
    kind = export_kind(config)
    variables = state.model.trainable_variables
    raw = [tf.identity(v.value) for v in variables]
    if kind == "ema":
        state.ema.copy_to(variables)
    try:
        info = {"weights": kind, "step": state.step, "polyak_decay": config.polyak_decay}
        info.update(metadata or {})
        return save_model_dir(state.model, config, directory, info, overwrite=True)
    finally:
        for variable, value in zip(variables, raw):
            variable.assign(value)


def default_export_dir(logdir: str) -> str:
    return os.path.join(logdir, EXPORT_DIR)
