"""iColoriT training (Yun et al. 2023, Sec. 3.4 and 4): Huber loss on ab, AdamW with
linear warmup + cosine decay, on the loop both families share (train/loop.py:
any tf.distribute strategy, resumable, chief-only checkpoints)."""

import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from coltran_tf.data import decode, sources
from coltran_tf.data.sources import POSITION
from coltran_tf.icolorit import convert
from coltran_tf.icolorit.data import get_dataset
from coltran_tf.icolorit.model import build_icolorit, network_input
from coltran_tf.train import loop
from coltran_tf.utils.files import write_json


def huber_loss(predicted_ab, target_ab, delta: float = 0.01):
    """The official loss (Sec. 3.4; the code's form): per element e²/(2δ) if |e| < δ else |e| - δ/2,
    summed over (a, b), averaged over batch and pixels. Not Keras' Huber (which
    is δ times this, averaged over channels)."""
    error = tf.abs(tf.cast(predicted_ab, tf.float32) - tf.cast(target_ab, tf.float32))
    elementwise = tf.where(error < delta, 0.5 * error**2 / delta, error - 0.5 * delta)
    return tf.reduce_mean(tf.reduce_sum(elementwise, axis=-1))


@keras.saving.register_keras_serializable(package="coltran_tf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> peak linearly over `warmup_steps`, then min + ½(peak - min)(1 + cos(π i / T))
    for i = step - warmup, T = total - warmup (per iteration, as the official code)."""

    def __init__(self, peak: float, minimum: float, warmup_steps: int, total_steps: int):
        self.peak, self.minimum = peak, minimum
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak * step / max(self.warmup_steps, 1)
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = tf.minimum((step - self.warmup_steps) / decay_steps, 1.0)
        cosine = self.minimum + 0.5 * (self.peak - self.minimum) * (
            1.0 + tf.cos(math.pi * progress))
        return tf.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self):
        return {"peak": self.peak, "minimum": self.minimum,
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def build_optimizer(config, model) -> keras.optimizers.AdamW:
    """AdamW(β = (0.9, 0.95), ε = 1e-8), weight decay on >= 2-D weights only."""
    schedule = WarmupCosine(float(config.learning_rate), float(config.min_learning_rate),
                            int(config.warmup_steps), int(config.max_train_steps))
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=float(config.weight_decay),
        beta_1=float(config.beta_1), beta_2=float(config.beta_2), epsilon=float(config.epsilon))
    optimizer.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) < 2])
    optimizer.build(model.trainable_variables)
    return optimizer


def _train_step_fn(model, optimizer, stream: loop.StreamPosition, strategy, delta: float):
    def replica_step(batch):
        lab, mask = batch["lab"], batch["mask"]
        position = batch[POSITION]
        with tf.GradientTape() as tape:
            predicted = model(network_input(lab, mask), training=True)
            loss = huber_loss(predicted, lab[..., 1:], delta)
            scaled = loss / strategy.num_replicas_in_sync
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, position

    @tf.function
    def step(iterator):
        losses, positions = strategy.run(replica_step, args=(next(iterator),))
        stream.advance(strategy, positions)
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)

    return step


def build_state(config, strategy: tf.distribute.Strategy | None = None):
    """(model, optimizer, stream position, their checkpoint): everything a step
    depends on, so that a resume is exact (train/loop.py)."""
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(int(config.seed))
    with strategy.scope():
        model = build_icolorit(config.model.preset, config.get("precision", "float32"),
                               drop_path=float(config.model.drop_path))
        optimizer = build_optimizer(config, model)
    stream = loop.StreamPosition(strategy, sources.describe_position)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                     random=loop.random_state(model), stream=stream.variable)
    return model, optimizer, stream, checkpoint


# What decides which examples and hints each step sees: a resume must keep them.
RESUME_KEYS = ("batch_size", "dataset", "seed", "image_size", "max_hints", "crop_scale",
               "crop_ratio", "data.data_dir", "data.manual_dir", "data.skip_grayscale",
               "data.valid_percent", "data.test_percent")


def train(config, logdir: str, strategy: tf.distribute.Strategy | None = None,
          resume_with_changes: bool = False, report=None) -> dict:
    """Trains (or resumes) to config.max_train_steps on the loop both families
    share (train/loop.py); writes logdir/ckpt-*, logdir/log.jsonl (one line per
    log step), TensorBoard scalars (logdir/train) and logdir/model/ (our weights
    format, loadable by colorize --weights=logdir/model). Returns {step: mean
    loss} of the steps logged this run. report: where progress lines go
    (default: stdout)."""
    strategy = strategy or tf.distribute.get_strategy()
    model, optimizer, stream, checkpoint = build_state(config, strategy)
    stats = decode.DecodeStats()
    step_fn = _train_step_fn(model, optimizer, stream, strategy, float(config.huber_delta))

    def run_steps(iterator, steps: int) -> dict:
        return {"loss": float(np.mean([float(step_fn(iterator)) for _ in range(steps)]))}

    def mismatch(path, error):
        return ValueError(
            f"{path} does not fit the configured model (config.model.preset="
            f"{config.model.preset!r}): {str(error)[:300]}. Continue with the config it was "
            "trained with, or pass a new --logdir.")

    def export():
        path = os.path.join(logdir, "model")
        convert.save(model, path)
        return path

    task = loop.Task(
        checkpoint=checkpoint, current_step=lambda: int(optimizer.iterations.numpy()),
        run_steps=run_steps,
        dataset=lambda position: get_dataset(config, "train", int(config.batch_size),
                                             training=True, stats=stats, position=position),
        stream=stream,
        describe=lambda losses: (f"loss {losses['loss']:.5f} | "
                                 f"lr {float(optimizer.learning_rate):.2e}"),
        mismatch=mismatch,
        prepare=lambda: write_json(os.path.join(logdir, "config.json"),
                                   json.loads(config.to_json())),
        export=export, examples="images", config=json.loads(config.to_json()),
        resume_keys=RESUME_KEYS)
    summary = loop.run(task, logdir, int(config.max_train_steps), strategy,
                       batch_size=int(config.batch_size),
                       steps_per_log=int(config.steps_per_log),
                       keep=int(config.checkpoints_to_keep),
                       save_every_steps=int(config.save_checkpoint_steps), log_name="log.jsonl",
                       report=report or (lambda line: print(line, flush=True)),
                       allow_changes=resume_with_changes)
    if stats.skipped:
        (report or print)(stats.summary())
    return {step: losses["loss"] for step, losses in summary["history"]}
