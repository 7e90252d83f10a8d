"""The training loop (the three ColTran models train independently, as in the paper).

Several steps run inside one `tf.function` (`steps_per_summaries`), each step
being one `strategy.run` of forward, backward, RMSprop update and Polyak
averaging. The per-replica loss is divided by the number of replicas and the
optimizer sums gradients over replicas, so any strategy computes the update of
one device with the same global batch.

Checkpoints (step, weights, optimizer slots, EMA) are written every
`save_checkpoint_secs`, when SIGTERM/SIGINT arrives, and at the end; a restart
resumes from the newest. At the end the EMA weights are exported to
`$logdir/export` for inference. Progress goes to `report`, TensorBoard
(`$logdir/train`) and `$logdir/train_log.jsonl` (one JSON line per call).
"""

import json
import os

import tensorflow as tf
from absl import logging

from coltran_tf.checkpoints.native import CONFIG_FILE, config_to_dict
from coltran_tf.data import datasets, decode
from coltran_tf.train import state as state_lib
from coltran_tf.utils.checkpointing import ChiefSaver
from coltran_tf.utils.distribute import is_chief
from coltran_tf.utils.files import write_json
from coltran_tf.utils.progress import GracefulStop, Rate, format_duration


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
        grads, losses = gradients(batch)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        ema.update()
        return losses

    @tf.function
    def train_chunk(iterator, num_steps):
        totals = tuple(tf.constant(0.0) for _ in names)
        for _ in tf.range(num_steps):
            per_replica = strategy.run(replica_step, args=(next(iterator),))
            totals = tuple(total + strategy.reduce("SUM", per_replica[name], axis=None)
                           for total, name in zip(totals, names))
        return {name: total / tf.cast(num_steps, tf.float32)
                for name, total in zip(names, totals)}

    return train_chunk


def _progress_line(step, total, losses, rate, eta, batch_size, stats) -> str:
    parts = [f"step {step}/{total}", f"loss {losses['loss_bits_per_dim']:.4f} bits/dim"]
    if "encoder_loss_bits_per_dim" in losses:
        parts.append(f"parallel {losses['encoder_loss_bits_per_dim']:.4f}")
    parts += [f"{rate:.2f} steps/s", f"{rate * batch_size:.1f} examples/s",
              f"ETA {format_duration(eta)}"]
    if stats.skipped:
        parts.append(f"{stats.skipped} unreadable image(s) skipped")
    return " | ".join(parts)


TRAIN_LOG = "train_log.jsonl"


def _append_log(logdir: str, record: dict) -> None:
    with open(os.path.join(logdir, TRAIN_LOG), "a") as f:
        f.write(json.dumps(record) + "\n")


def _write_config(logdir: str, config) -> None:
    """$logdir/config.json: what sampling and colorize build the model from."""
    os.makedirs(logdir, exist_ok=True)
    write_json(os.path.join(logdir, CONFIG_FILE), config_to_dict(config))


def train(config, logdir: str, strategy: tf.distribute.Strategy | None = None,
          steps_per_summaries: int = 100, report=logging.info) -> dict:
    """Trains until config.max_train_steps (or a signal); returns a summary.

    Returns:
      {"step", "start_step", "history": [(step, {loss name: value})],
       "skipped_images", "stopped_by", "export_dir"}.
    """
    strategy = strategy or tf.distribute.get_strategy()
    state = state_lib.build_train_state(config, strategy)
    restored = state_lib.restore_latest(state, logdir)
    start = state.step
    total = int(config.max_train_steps)
    report(f"{'Resuming from ' + restored if restored else 'Starting'} at step {start} of "
           f"{total}; {strategy.num_replicas_in_sync} replica(s), global batch "
           f"{config.batch_size}, logdir {logdir}")
    chief = is_chief(strategy)
    if chief:
        _write_config(logdir, config)
    saver = ChiefSaver(state.checkpoint, logdir, int(config.checkpoints_to_keep), strategy,
                       lambda: state.step)
    summary = {"step": start, "start_step": start, "history": [], "skipped_images": 0,
               "stopped_by": None, "export_dir": None}
    if start >= total:
        report(f"Nothing to do: step {start} >= max_train_steps {total}.")
        return summary

    stats = decode.DecodeStats()
    dataset = datasets.get_dataset(config, "train", int(config.batch_size), training=True,
                                   stats=stats, seed_offset=start)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    train_chunk = make_train_chunk(state, strategy, jit_compile=bool(config.jit_compile))
    writer = (tf.summary.create_file_writer(os.path.join(logdir, "train")) if chief
              else tf.summary.create_noop_writer())
    rate = Rate(start, total)
    with GracefulStop() as stop, writer.as_default():
        while state.step < total and not stop.requested:
            steps = min(int(steps_per_summaries), total - state.step)
            losses = {k: float(v) for k, v in train_chunk(iterator, tf.constant(steps)).items()}
            step = state.step
            steps_per_sec, eta = rate.update(step)
            summary["history"].append((step, losses))
            report(_progress_line(step, total, losses, steps_per_sec, eta,
                                  int(config.batch_size), stats))
            for name, value in losses.items():
                tf.summary.scalar(name, value, step=step)
            tf.summary.scalar("steps_per_sec", steps_per_sec, step=step)
            if chief:
                _append_log(logdir, {"step": step, **losses, "steps_per_sec": steps_per_sec})
            if saver.due(float(config.save_checkpoint_secs)):
                path = saver.save()
                if path:
                    report(f"Saved {path}")
        summary["stopped_by"] = stop.requested
        path = saver.save()
        if path:
            report(f"Saved {path}" + (f" (stopping on {stop.requested})"
                                      if stop.requested else ""))
    summary.update(step=state.step, skipped_images=stats.skipped)
    if stats.skipped:
        report(stats.summary())
    if state.step >= total and chief:
        summary["export_dir"] = state_lib.export_model(
            state, config, state_lib.default_export_dir(logdir), {"logdir": logdir})
        report(f"Exported {state_lib.export_kind(config).upper()} weights to "
               f"{summary['export_dir']}")
    return summary
