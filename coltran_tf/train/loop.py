"""The training loop of both model families (ColTran's stages, iColoriT).

Any tf.distribute strategy; resumes from the newest checkpoint of the logdir;
runs the steps in chunks (one progress line, TensorBoard scalars and one line
of the JSON-lines log per chunk: steps/s, examples/s, ETA); writes
checkpoints from the chief only (utils/checkpointing.py) every
`save_every_secs` seconds or `save_every_steps` steps, when SIGTERM/SIGINT
arrives and at the end; stops on a non-finite loss; exports at the end. A
family supplies a `Task`: its checkpoint, how to run n steps, its data, its
progress line and its export. Family-neutral: it imports nothing but utils,
so iColoriT may use it.

Exact resume: a run killed at any moment and rerun ends with the weights of an
uninterrupted run, bit for bit, on the same machine. The checkpoint holds
everything a step depends on: the weights, the optimizer (with its step) and
the family's extras (ColTran's EMA), the state of every Keras seed generator
(`random_state`: dropout, drop-path) and the position of the training stream
(`StreamPosition`; the stream's order is a function of the seed, the epoch
and the index, data/sources.py), from which the data resume. A rerun must use
the same settings (`check_resume`) and the same number of replicas
(`check_replicas`: another count sums the gradients in another order).
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from coltran_tf.utils.checkpointing import ChiefSaver
from coltran_tf.utils.progress import GracefulStop, Rate, format_duration


@dataclass
class Task:
    """What a model family gives the loop.

    checkpoint: everything a checkpoint holds (model, optimizer, ...).
    current_step: () -> the step the checkpoint is at (its optimizer's iterations).
    run_steps: (iterator, n) -> {loss name: mean over the n steps} (floats).
    dataset: stream position -> the training batches from there on.
    stream: the checkpointed position of the training stream (advanced by
      run_steps); None: the data restart at position 0 on resume.
    describe: (losses) -> the progress line's loss part ("loss 0.0123").
    mismatch: (checkpoint path, error) -> the error for a checkpoint that does
      not fit the model (naming the fix).
    prepare: on the chief before the first step (write the run's config).
    export: on the chief when the last step is done; -> what it wrote.
    nonfinite_hint: the fix named when a loss is not finite.
    examples: what one batch element is called in progress lines.
    config: the run's config as a plain dict (what `prepare` writes to
      logdir/config.json), and resume_keys: its dotted keys that decide which
      examples each step sees; a resume with any of them changed is refused.
    """
    checkpoint: tf.train.Checkpoint
    current_step: Callable[[], int]
    run_steps: Callable
    dataset: Callable[[int], tf.data.Dataset]
    describe: Callable[[dict], str]
    mismatch: Callable[[str, Exception], Exception]
    prepare: Callable[[], None] = lambda: None
    export: Callable[[], str | None] = lambda: None
    nonfinite_hint: str = "lower --config.learning_rate"
    examples: str = "examples"
    config: dict | None = None
    resume_keys: tuple = ()
    stream: "StreamPosition | None" = None


CONFIG_FILE = "config.json"
REPLICAS_FILE = "replicas.json"


class StreamPosition:
    """Where the training stream continues, an int64 the checkpoint holds (in
    data/sources.py's encoding: (epoch << 32) + index within the epoch).

    Training batches carry each example's stream position; after every step
    `advance` (cross-replica context, inside the step's tf.function) gathers
    them from all replicas and workers and stores the last one + 1. `describe`
    words a position for the log (the data's own, sources.describe_position:
    this module imports nothing of a model family or its data).
    """

    def __init__(self, strategy, describe: Callable[[int], str] = str):
        self._describe = describe
        with strategy.scope():
            self.variable = tf.Variable(0, dtype=tf.int64, trainable=False,
                                        name="stream_position")

    def value(self) -> int:
        return int(self.variable.numpy())

    def advance(self, strategy, per_replica_positions) -> None:
        positions = strategy.gather(per_replica_positions, axis=0)
        self.variable.assign(tf.reduce_max(positions) + 1)

    def describe(self) -> str:
        return self._describe(self.value())


def random_state(model) -> list:
    """The state variables of every Keras seed generator in `model` (dropout,
    drop-path): Keras keeps them out of `tf.train.Checkpoint(model=...)` and out
    of weight files, so a checkpoint must list them itself."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _training_options() -> tf.data.Options:
    # Every worker reads the same stream and keeps its share of each global batch, so
    # a step sees the same examples with any number of workers and the one position
    # is every worker's.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def check_replicas(logdir: str, replicas: int, allow_changes: bool = False) -> str | None:
    """The change of replica count against the run in `logdir` (its
    replicas.json), or None; ResumeMismatch unless `allow_changes`."""
    path = os.path.join(logdir, REPLICAS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        previous = int(json.load(f)["replicas"])
    if previous == replicas:
        return None
    change = f"replicas: {previous} -> {replicas}"
    if not allow_changes:
        raise ResumeMismatch(
            f"{logdir} was trained on {previous} replica(s) and this run has {replicas}. The "
            "steps would see the same examples, but the gradients would be summed in another "
            "order, so the run would not be the one it resumes, bit for bit. Resume with "
            f"{previous} replica(s) (workers x devices), pass --resume_with_changes to continue "
            "anyway, or use another --logdir.")
    return change


class ResumeMismatch(ValueError):
    """A resume whose config changed what the steps see (names the settings)."""


def _lookup(values: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


def check_resume(task: Task, logdir: str, allow_changes: bool = False) -> list[str]:
    """The settings of `task.resume_keys` that differ from the run in `logdir`
    (its config.json); ResumeMismatch naming them unless `allow_changes`."""
    path = os.path.join(logdir, CONFIG_FILE)
    if task.config is None or not os.path.isfile(path):
        return []
    with open(path) as f:
        previous = json.load(f)
    changed = [f"config.{key}: {_lookup(previous, key)!r} -> {_lookup(task.config, key)!r}"
               for key in task.resume_keys
               if _lookup(previous, key) != _lookup(task.config, key)]
    if changed and not allow_changes:
        raise ResumeMismatch(
            f"{logdir} was trained with other settings; resuming would change which examples "
            f"the next steps see: {'; '.join(changed)}. Resume with the run's settings, pass "
            "--resume_with_changes to continue anyway, or use another --logdir.")
    return changed


def restore_latest(checkpoint: tf.train.Checkpoint, logdir: str, mismatch) -> str | None:
    """Restores the newest checkpoint of `logdir` into `checkpoint`; returns its
    path. mismatch(path, error): the error raised for one that does not fit."""
    latest = tf.train.latest_checkpoint(logdir)
    if latest is not None:
        try:
            checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise mismatch(latest, error) from error
    return latest


def run(task: Task, logdir: str, total: int, strategy, *, batch_size: int, steps_per_log: int,
        keep: int, save_every_secs: float | None = None, save_every_steps: int | None = None,
        log_name: str = "train_log.jsonl", report=print, extra_line=lambda: "",
        allow_changes: bool = False) -> dict:
    """Trains until step `total` (or a signal); returns
    {"step", "start_step", "history": [(step, losses)], "stopped_by", "export"}.

    A resume whose config changed a setting of `task.resume_keys` is refused
    (ResumeMismatch) unless `allow_changes`."""
    restored = restore_latest(task.checkpoint, logdir, task.mismatch)
    replicas = strategy.num_replicas_in_sync
    if restored:
        changes = check_resume(task, logdir, allow_changes)
        changes.append(check_replicas(logdir, replicas, allow_changes))
        for change in filter(None, changes):
            report(f"Resuming with a changed setting (--resume_with_changes): {change}")
    start = task.current_step()
    where = f" ({task.stream.describe()} of the data)" if restored and task.stream else ""
    report(f"{'Resuming from ' + restored if restored else 'Starting'} at step {start} of "
           f"{total}{where}; {replicas} replica(s), global batch {batch_size}, logdir {logdir}")
    saver = ChiefSaver(task.checkpoint, logdir, keep, strategy, task.current_step)
    if saver.chief:
        os.makedirs(logdir, exist_ok=True)
        task.prepare()
        with open(os.path.join(logdir, REPLICAS_FILE), "w") as f:
            json.dump({"replicas": replicas}, f)
    summary = {"step": start, "start_step": start, "history": [], "stopped_by": None,
               "export": None}
    if start >= total:
        report(f"Nothing to do: step {start} >= max_train_steps {total}.")
        return summary
    position = task.stream.value() if task.stream else 0
    dataset = task.dataset(position).with_options(_training_options())
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    writer = (tf.summary.create_file_writer(os.path.join(logdir, "train")) if saver.chief
              else tf.summary.create_noop_writer())
    rate = Rate(start, total)
    with GracefulStop() as stop, writer.as_default():
        while task.current_step() < total and not stop.requested:
            step = task.current_step()
            steps = min(int(steps_per_log), total - step)
            if save_every_steps:
                steps = min(steps, int(save_every_steps) - step % int(save_every_steps))
            losses = {k: float(v) for k, v in task.run_steps(iterator, steps).items()}
            step = task.current_step()
            bad = [name for name, value in losses.items() if not np.isfinite(value)]
            if bad:
                raise FloatingPointError(f"{bad[0]} became {losses[bad[0]]} by step {step}; "
                                         f"{task.nonfinite_hint}.")
            per_second, eta = rate.update(step)
            summary["history"].append((step, losses))
            report(" | ".join(part for part in (
                f"step {step}/{total}", task.describe(losses), f"{per_second:.2f} steps/s",
                f"{per_second * batch_size:.1f} {task.examples}/s", f"ETA {format_duration(eta)}",
                extra_line()) if part))
            for name, value in losses.items():
                tf.summary.scalar(name, value, step=step)
            tf.summary.scalar("steps_per_sec", per_second, step=step)
            if saver.chief:
                with open(os.path.join(logdir, log_name), "a") as f:
                    f.write(json.dumps({"step": step, **losses, "steps_per_sec": per_second})
                            + "\n")
            due = (save_every_steps and step % int(save_every_steps) == 0) or \
                (save_every_secs is not None and saver.due(float(save_every_secs)))
            if due:
                path = saver.save()
                if path:
                    report(f"Saved {path}")
        summary["stopped_by"] = stop.requested
        path = saver.save()
        if path:
            report(f"Saved {path}" + (f" (stopping on {stop.requested}; run the same command "
                                      "to continue)" if stop.requested else ""))
    summary["step"] = task.current_step()
    if summary["step"] >= total and saver.chief:
        summary["export"] = task.export()
    return summary
