"""Evaluation in bits/dim (the likelihood the paper reports, Kumar et al. 2021, Table 1).

Either follows a training run (each new checkpoint of `logdir`, evaluated
with its EMA weights, until one reaches max_train_steps or no new one comes
within config.eval_checkpoint_wait_secs), or evaluates one given checkpoint:
a training checkpoint of ours, an exported model directory, or an original
ColTran checkpoint (converted on the fly, EMA weights).
"""

import json
import os
import time
import weakref

import tensorflow as tf
from absl import logging

from coltran_tf.checkpoints.loading import load_weights
from coltran_tf.checkpoints.native import is_model_dir
from coltran_tf.checkpoints.reference import resolve_checkpoint_path
from coltran_tf.data import datasets, decode
from coltran_tf.models.builder import build_model
from coltran_tf.train.trainer import loss_names
from coltran_tf.utils.progress import format_duration

RESULTS_FILE = "results.jsonl"


_EVAL_STEPS = weakref.WeakKeyDictionary()  # model -> its compiled eval step


def make_eval_step(model):
    """The model's compiled eval step, traced once and reused for every checkpoint."""
    if model in _EVAL_STEPS:
        return _EVAL_STEPS[model]
    names = loss_names(model)

    @tf.function
    def eval_step(batch):
        losses = model.batch_loss(batch, model.compute_outputs(batch, training=False))
        return {name: losses[name] for name in names}

    _EVAL_STEPS[model] = eval_step
    return eval_step


def bits_per_dim(model, dataset) -> dict:
    """Example-weighted mean of each loss over a dataset of batches."""
    eval_step = make_eval_step(model)
    totals, count = {}, 0
    for batch in dataset:
        size = int(tf.shape(batch["label"])[0])
        for name, value in eval_step(batch).items():
            totals[name] = totals.get(name, 0.0) + float(value) * size
        count += size
    if count == 0:
        raise datasets.DataError("The evaluation split yielded no images.")
    return {**{name: total / count for name, total in totals.items()}, "num_examples": count}


def _step_of(prefix: str) -> int:
    reader = tf.train.load_checkpoint(prefix)
    key = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
    return int(reader.get_tensor(key)) if reader.has_tensor(key) else 0


class _Recorder:
    def __init__(self, logdir, split, report):
        self.directory = os.path.join(logdir, f"eval_{split}")
        os.makedirs(self.directory, exist_ok=True)
        self.writer = tf.summary.create_file_writer(self.directory)
        self.split, self.report = split, report

    def record(self, step, source, results, seconds):
        with self.writer.as_default():
            for name, value in results.items():
                if name != "num_examples":
                    tf.summary.scalar(name, value, step=step)
        self.writer.flush()
        line = {"step": step, "checkpoint": source, **results}
        with open(os.path.join(self.directory, RESULTS_FILE), "a") as f:
            f.write(json.dumps(line) + "\n")
        extra = "".join(f", {k} {v:.4f}" for k, v in results.items()
                        if k not in ("loss_bits_per_dim", "num_examples", "loss"))
        self.report(f"eval_{self.split} step {step}: {results['loss_bits_per_dim']:.4f} bits/dim"
                    f"{extra} over {results['num_examples']} images ({source}, "
                    f"{format_duration(seconds)})")


def evaluate(config, logdir: str, split: str, checkpoint: str | None = None,
             report=logging.info) -> list[dict]:
    """Evaluates checkpoints on `split`; returns one result dict per checkpoint."""
    stats = decode.DecodeStats()
    dataset = datasets.get_dataset(config, split, int(config.eval_batch_size), training=False,
                                   stats=stats, num_examples=int(config.eval_num_examples))
    recorder = _Recorder(logdir, split, report)
    model = build_model(config)
    results = []

    def run(eval_model, step, source):
        start = time.monotonic()
        values = bits_per_dim(eval_model, dataset)
        recorder.record(step, source, values, time.monotonic() - start)
        results.append({"step": step, "checkpoint": source, **values})

    if checkpoint:
        eval_model, source = load_weights(model, checkpoint)
        step = _step_of(resolve_checkpoint_path(checkpoint)) if not is_model_dir(checkpoint) else 0
        run(eval_model, step, source)
    else:
        wait = float(config.eval_checkpoint_wait_secs)
        report(f"Waiting for checkpoints in {logdir}"
               + (f" (giving up after {wait:.0f}s without one)" if wait >= 0 else ""))
        for prefix in tf.train.checkpoints_iterator(logdir, timeout=None if wait < 0 else wait):
            eval_model, source = load_weights(model, prefix)
            step = _step_of(prefix)
            run(eval_model, step, source)
            if step >= int(config.max_train_steps):
                break
    if stats.skipped:
        report(stats.summary())
    return results
