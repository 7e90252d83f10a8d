"""Loading checkpoints written by the original ColTran implementation.

A reference checkpoint is a TF object checkpoint whose root children are named
by Keras-2 variable names, plus EMA shadows (`.../ExponentialMovingAverage:0`)
and optimizer state (legacy RMSprop `rms` slots and `optimizer/iter`, or the
newer `optimizer/_variables/N` layout), which is ignored.

The mapping is strict: every variable of our model must receive exactly one
checkpoint value of the right shape and every model variable of the checkpoint
must be used; otherwise `ReferenceCheckpointMismatch` names the keys that are
missing, unused or of the wrong shape. Nothing is assigned unless all match.
"""

import dataclasses
import os

import numpy as np

from coltran_tf.checkpoints.reference_names import canonical_names, reference_slots
from coltran_tf.configs import stages

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_EMA_SUFFIX = "/ExponentialMovingAverage"
_IGNORED_PREFIXES = ("optimizer/", "save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH")
_MAX_LISTED = 25
_MODEL_SCOPES = tuple(stage.reference_scope for stage in stages.STAGES)


class ReferenceCheckpointMismatch(ValueError):
    """The checkpoint does not hold the variables that the config describes."""


def unescape_key(key: str) -> str:
    """Undoes the object-graph escaping of a root child name ('.S' -> '/', '..' -> '.')."""
    out, i = [], 0
    while i < len(key):
        if key[i] == "." and i + 1 < len(key) and key[i + 1] in ".S":
            out.append("/" if key[i + 1] == "S" else ".")
            i += 2
        else:
            out.append(key[i])
            i += 1
    return "".join(out)


@dataclasses.dataclass
class ReferenceEntries:
    """The model variables (`raw`) and EMA shadows (`ema`) of a checkpoint, by
    original variable name without ':0', each a shape; plus ignored keys."""

    raw: dict
    ema: dict
    keys: dict  # original name -> checkpoint key, for both raw and EMA names
    ignored: list


def parse_checkpoint_keys(entries) -> ReferenceEntries:
    """Sorts (checkpoint key, shape) pairs into model, EMA and ignored ones."""
    raw, ema, keys, ignored = {}, {}, {}, []
    for key, shape in entries:
        if (not key.endswith(_VALUE_SUFFIX) or "/.OPTIMIZER_SLOT/" in key
                or key.startswith(_IGNORED_PREFIXES)):
            ignored.append(key)
            continue
        name = unescape_key(key[: -len(_VALUE_SUFFIX)])
        if name.endswith(":0"):
            name = name[:-2]
        target = raw
        if name.endswith(_EMA_SUFFIX):
            name, target = name[: -len(_EMA_SUFFIX)], ema
        target[name] = tuple(shape)
        keys[(name, target is ema)] = key
    return ReferenceEntries(raw, ema, keys, ignored)


def _listing(title, items):
    if not items:
        return []
    shown = [f"    {item}" for item in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        shown.append(f"    ... and {len(items) - _MAX_LISTED} more")
    return [f"  {title} ({len(items)}):", *shown]


@dataclasses.dataclass
class MappingPlan:
    """Which checkpoint name feeds each of our variables."""

    pairs: list  # (our variable, original name, has EMA)


def plan_mapping(model, entries, use_ema: bool = True, source: str = "checkpoint"):
    """Matches a model's variables to parsed checkpoint entries, one to one.

    Args:
      model: a built ColTran model.
      entries: ReferenceEntries (see parse_checkpoint_keys).
      use_ema: require an EMA shadow for every trainable variable.
      source: how to name the checkpoint in errors.

    Raises:
      ReferenceCheckpointMismatch: listing missing, unused and mis-shaped keys.
    """
    canonical = canonical_names(sorted(entries.raw))
    by_canonical = {c: name for name, c in canonical.items()}
    missing, wrong_shape, pairs, used = [], [], [], set()
    for slot, variable in reference_slots(model):
        name = by_canonical.get(slot)
        if name is None:
            missing.append(f"{variable.path} {tuple(variable.shape)} (original: {slot})")
            continue
        used.add(name)
        if tuple(entries.raw[name]) != tuple(variable.shape):
            wrong_shape.append(f"{name}: checkpoint {tuple(entries.raw[name])}, "
                               f"model {variable.path} {tuple(variable.shape)}")
        has_ema = name in entries.ema
        if use_ema and variable.trainable and not has_ema:
            missing.append(f"{name}{_EMA_SUFFIX} (EMA of {variable.path})")
        pairs.append((variable, name, has_ema))
    unused = sorted(set(entries.raw) - used)
    unused += sorted(f"{n}{_EMA_SUFFIX}" for n in set(entries.ema) - used)
    if missing or unused or wrong_shape:
        lines = [f"{source} does not match the {model.name} that the config describes; "
                 "nothing was loaded."]
        lines += _listing("missing from the checkpoint", missing)
        lines += _listing("in the checkpoint but unused by the model", unused)
        lines += _listing("wrong shape", wrong_shape)
        scopes = sorted({n.split("/")[0] for n in entries.raw if "/" in n
                         and n.split("/")[0].rstrip("_0123456789") in _MODEL_SCOPES})
        if scopes:
            lines.append(f"  The checkpoint holds variables under: {', '.join(scopes)}.")
        lines.append("Fix: use the config the checkpoint was trained with (model sizes, "
                     "stage and conditioning switches), or the checkpoint of this model.")
        raise ReferenceCheckpointMismatch("\n".join(lines))
    return MappingPlan(pairs)


def resolve_checkpoint_path(path: str) -> str:
    """A checkpoint prefix from a prefix or a directory (its latest checkpoint)."""
    import tensorflow as tf

    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:  # a state file naming the writer's own absolute path
            indexes = sorted(f for f in os.listdir(path) if f.endswith(".index"))
            if len(indexes) == 1:
                prefix = os.path.join(path, indexes[0][: -len(".index")])
        if prefix is None:
            raise FileNotFoundError(
                f"No checkpoint in directory {path!r} (no 'checkpoint' file naming one, and "
                "not exactly one .index file). "
                "Pass the directory that holds 'checkpoint' and 'model-N.index', or a "
                "prefix such as DIR/model-N.")
        return prefix
    if not os.path.exists(path + ".index"):
        raise FileNotFoundError(
            f"No checkpoint at {path!r}: expected {path}.index. Pass a checkpoint prefix "
            "(DIR/model-N) or the directory that contains it.")
    return path


def load_reference_checkpoint(model, path: str, use_ema: bool = True) -> dict:
    """Loads an original ColTran checkpoint into a built model of ours.

    Args:
      model: built ColTranCore, ColorUpsampler or SpatialUpsampler.
      path: checkpoint prefix, or a directory with a 'checkpoint' file.
      use_ema: load the Polyak (EMA) averages, as the original's restore does
        for evaluation and sampling; False loads the raw training weights.

    Returns:
      A summary: {"checkpoint", "variables", "ema", "ignored"}.

    Raises:
      FileNotFoundError, ReferenceCheckpointMismatch.
    """
    import tensorflow as tf

    prefix = resolve_checkpoint_path(path)
    entries = parse_checkpoint_keys(tf.train.list_variables(prefix))
    plan = plan_mapping(model, entries, use_ema=use_ema, source=f"Checkpoint {prefix!r}")
    reader = tf.train.load_checkpoint(prefix)
    values = []
    for variable, name, has_ema in plan.pairs:
        ema = use_ema and has_ema and variable.trainable
        value = np.asarray(reader.get_tensor(entries.keys[(name, ema)]))
        values.append((variable, value))
    for variable, value in values:  # assign only after every read succeeded
        variable.assign(value)
    return {"checkpoint": prefix, "variables": len(values),
            "ema": use_ema, "ignored": len(entries.ignored)}
