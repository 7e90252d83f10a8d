"""Test helper: writes a checkpoint in the original ColTran's layout.

Names come from the canonical slot list with every auto-numbered component
renumbered as `base_<rank * gap + offset>` (a process that built other layers
first), EMA shadows under `<name>/ExponentialMovingAverage:0`, and optimizer
state in either the legacy (`rms` slots, `optimizer/iter`) or the newer
(`optimizer/_variables/N`) layout.
"""

import re

import numpy as np
import tensorflow as tf

from coltran_tf.checkpoints.reference_names import reference_slots

_RANKED = re.compile(r"^(\w+)#(\d+)$")


def original_name(canonical: str, offset: int, gap: int) -> str:
    parts = []
    for part in canonical.split("/"):
        match = _RANKED.match(part)
        if match:
            number = int(match.group(2)) * gap + offset
            part = match.group(1) if number == 0 else f"{match.group(1)}_{number}"
        parts.append(part)
    return "/".join(parts)


def write_reference_style_checkpoint(model, prefix, offset=0, gap=1, ema_shift=0.5,
                                     optimizer="legacy", drop=(), extra=None):
    """Saves `model`'s weights as the original would; returns the written prefix.

    EMA shadows hold weight + ema_shift (so raw and EMA differ). `drop` removes
    variables (by original name), `extra` adds {name: array}.
    """
    values = {}
    for canonical, variable in reference_slots(model):
        name = original_name(canonical, offset, gap)
        values[f"{name}:0"] = np.asarray(variable)
        if variable.trainable:
            values[f"{name}/ExponentialMovingAverage:0"] = np.asarray(variable) + ema_shift
    for name in drop:
        values = {k: v for k, v in values.items() if not k.startswith(name)}
    values.update(extra or {})
    children = {k: tf.Variable(v) for k, v in values.items()}
    if optimizer == "legacy":
        opt = tf.train.Checkpoint(iter=tf.Variable(3, dtype=tf.int64),
                                  rho=tf.Variable(0.9), momentum=tf.Variable(0.0))
    else:
        opt = tf.train.Checkpoint(_iterations=tf.Variable(3, dtype=tf.int64),
                                  _variables=[tf.Variable(np.ones(3, np.float32))])
    checkpoint = tf.train.Checkpoint(optimizer=opt, **children)
    return checkpoint.write(prefix)
