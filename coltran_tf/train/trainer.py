"""ColTran's training (the three models train independently, as in the paper), on
the loop both families share (train/loop.py).

Several steps run inside one `tf.function` (`steps_per_summaries`), each step
being one `strategy.run` of forward, backward, RMSprop update and Polyak
averaging. The per-replica loss is divided by the number of replicas and the
optimizer sums gradients over replicas, so any strategy computes the update of
one device with the same global batch.

Checkpoints (step, weights, optimizer slots, EMA, seed generators, the data
stream's position: a resume is exact, train/loop.py) are written every
`save_checkpoint_secs` (and every `save_checkpoint_steps` if set), when
SIGTERM/SIGINT arrives, and at the end; a restart
resumes from the newest. At the end the EMA weights are exported to
`$logdir/export` for inference. Progress goes to `report`, TensorBoard
(`$logdir/train`) and `$logdir/train_log.jsonl` (one JSON line per call).
"""

import os

import tensorflow as tf
from absl import logging

from coltran_tf.checkpoints.native import CONFIG_FILE, config_to_dict
from coltran_tf.data import datasets, decode
from coltran_tf.data.sources import POSITION
from coltran_tf.train import loop
from coltran_tf.train import state as state_lib
from coltran_tf.utils.files import write_json


def loss_names(model) -> list[str]:
    names = ["loss", "loss_bits_per_dim"]
    if getattr(model, "has_parallel_head", False):
        names.append("encoder_loss_bits_per_dim")
    return names


def make_train_chunk(state: state_lib.TrainState, strategy, jit_compile: bool = False):
    """A tf.function (iterator, num_steps) -> mean losses over those steps."""
    model, optimizer, ema = state.model, state.optimizer, state.ema
    names = loss_names(model)
    replicas = strategy.num_replicas_in_sync

    def gradients(batch):
        with tf.GradientTape() as tape:
            outputs = model.compute_outputs(batch, training=True)
            losses = model.batch_loss(batch, outputs, training=True)
            scaled = losses["loss"] / replicas
        grads = tape.gradient(scaled, model.trainable_variables)
        return grads, {name: losses[name] / replicas for name in names}

    if jit_compile:
        gradients = tf.function(gradients, jit_compile=True)

    def replica_step(batch):
        batch = dict(batch)
        position = batch.pop(POSITION)
        grads, losses = gradients(batch)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        ema.update()
        return losses, position

    @tf.function
    def train_chunk(iterator, num_steps):
        totals = tuple(tf.constant(0.0) for _ in names)
        for _ in tf.range(num_steps):
            per_replica, positions = strategy.run(replica_step, args=(next(iterator),))
            state.stream.advance(strategy, positions)
            totals = tuple(total + strategy.reduce("SUM", per_replica[name], axis=None)
                           for total, name in zip(totals, names))
        return {name: total / tf.cast(num_steps, tf.float32)
                for name, total in zip(names, totals)}

    return train_chunk


TRAIN_LOG = "train_log.jsonl"


def _write_config(logdir: str, config) -> None:
    """$logdir/config.json: what sampling and colorize build the model from."""
    os.makedirs(logdir, exist_ok=True)
    write_json(os.path.join(logdir, CONFIG_FILE), config_to_dict(config))


def _describe(losses: dict) -> str:
    parts = [f"loss {losses['loss_bits_per_dim']:.4f} bits/dim"]
    if "encoder_loss_bits_per_dim" in losses:
        parts.append(f"parallel {losses['encoder_loss_bits_per_dim']:.4f}")
    return " | ".join(parts)


# What decides which examples each step sees (and how): a resume must keep them.
RESUME_KEYS = ("batch_size", "dataset", "seed", "num_epochs", "data.data_dir",
               "data.manual_dir", "data.skip_grayscale", "data.valid_percent",
               "data.test_percent", "resolution", "downsample", "downsample_res",
               "random_channel")


def train(config, logdir: str, strategy: tf.distribute.Strategy | None = None,
          steps_per_summaries: int = 100, report=logging.info,
          resume_with_changes: bool = False) -> dict:
    """Trains until config.max_train_steps (or a signal); returns a summary.

    Returns:
      {"step", "start_step", "history": [(step, {loss name: value})],
       "skipped_images", "stopped_by", "export_dir"}.
    """
    strategy = strategy or tf.distribute.get_strategy()
    state = state_lib.build_train_state(config, strategy)
    stats = decode.DecodeStats()
    train_chunk = make_train_chunk(state, strategy, jit_compile=bool(config.jit_compile))

    def export():
        path = state_lib.export_model(state, config, state_lib.default_export_dir(logdir),
                                      {"logdir": logdir})
        report(f"Exported {state_lib.export_kind(config).upper()} weights to {path}")
        return path

    task = loop.Task(
        checkpoint=state.checkpoint, current_step=lambda: state.step,
        run_steps=lambda iterator, steps: train_chunk(iterator, tf.constant(steps)),
        dataset=lambda position: datasets.get_dataset(config, "train", int(config.batch_size),
                                                      training=True, stats=stats,
                                                      position=position),
        stream=state.stream,
        describe=_describe, mismatch=state_lib.mismatch_error(logdir),
        prepare=lambda: _write_config(logdir, config), export=export,
        config=config_to_dict(config), resume_keys=RESUME_KEYS)
    summary = loop.run(
        task, logdir, int(config.max_train_steps), strategy,
        batch_size=int(config.batch_size), steps_per_log=steps_per_summaries,
        keep=int(config.checkpoints_to_keep), save_every_secs=float(config.save_checkpoint_secs),
        save_every_steps=int(config.get("save_checkpoint_steps", 0)) or None,
        log_name=TRAIN_LOG, report=report,
        extra_line=lambda: (f"{stats.skipped} unreadable image(s) skipped" if stats.skipped
                            else ""), allow_changes=resume_with_changes)
    summary["export_dir"] = summary.pop("export")
    summary["skipped_images"] = stats.skipped
    if stats.skipped:
        report(stats.summary())
    return summary
