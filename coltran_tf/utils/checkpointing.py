"""Checkpoints of a training run under any tf.distribute strategy, for both
model families' training loops.

Multi-worker saving needs every worker to write (the variables' values are
gathered collectively), but only the chief's copy is kept: the chief writes
into the logdir, every other worker into a scratch folder of its own that is
removed right after. So a multi-worker run leaves exactly one set of
checkpoints, and no two workers write the same files.
"""

import os
import shutil
import time

import tensorflow as tf

from coltran_tf.utils.distribute import is_chief, task_id


class ChiefSaver:
    """A CheckpointManager in `logdir` (the chief) or a scratch dir (other workers).

    Args:
      checkpoint: the tf.train.Checkpoint to write.
      current_step: () -> the step the checkpoint holds (its number).
    """

    def __init__(self, checkpoint: tf.train.Checkpoint, logdir: str, keep: int, strategy,
                 current_step, name: str = "ckpt"):
        self.chief = is_chief(strategy)
        self.directory = logdir if self.chief else os.path.join(
            logdir, f".worker_{task_id(strategy)}")
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=keep,
                                                  checkpoint_name=name)
        self.current_step = current_step
        self.last_time = time.monotonic()
        self.last_step = current_step()

    def save(self) -> str | None:
        """Writes a checkpoint of the current step (none if that step is saved
        already); the path on the chief, None on other workers."""
        step = self.current_step()
        self.last_time = time.monotonic()
        if step == self.last_step and self.manager.latest_checkpoint:
            return None
        path = self.manager.save(checkpoint_number=step)
        self.last_step = step
        if not self.chief:
            shutil.rmtree(self.directory, ignore_errors=True)
            return None
        return path

    def due(self, every_secs: float) -> bool:
        return time.monotonic() - self.last_time >= every_secs


def differences(first: str, second: str) -> dict[str, float]:
    """{variable: largest |difference|} of the variables in which the newest
    checkpoints of two logdirs differ (inf: in one only, or not a number that
    matches); {} when they are equal bit for bit (save counters aside)."""
    import numpy as np

    readers = [tf.train.load_checkpoint(tf.train.latest_checkpoint(d)) for d in (first, second)]
    shapes = [r.get_variable_to_shape_map() for r in readers]
    names = {n for s in shapes for n in s if "OBJECT_GRAPH" not in n and "save_counter" not in n}
    found = {}
    for name in sorted(names):
        if not all(name in s for s in shapes):
            found[name] = float("inf")
            continue
        x, y = (np.asarray(r.get_tensor(name)) for r in readers)
        if x.shape != y.shape:
            found[name] = float("inf")
        elif np.issubdtype(x.dtype, np.number):
            if not np.array_equal(x, y):
                found[name] = float(np.max(np.abs(x.astype(np.float64) - y)))
        elif not np.array_equal(x, y):
            found[name] = float("inf")
    return found
