"""ColTran's input pipeline: batched example dicts of a split.

Images come from data/sources.py (ImageNet with the original's splits, a
folder, TFRecords or the bundled photos); each becomes the example dict of the
original implementation (data/preprocess.py: square crop, area resize to 256
and 64; data/keys.py names its entries).
"""

from dataclasses import dataclass

import tensorflow as tf

from coltran_tf.data import decode
from coltran_tf.data.preprocess import make_example
from coltran_tf.data.sources import (
    POSITION,
    DataError,
    SourceSpec,
    indexed_split,
)

__all__ = ["DataError", "ExampleSpec", "get_dataset"]


@dataclass(frozen=True)
class ExampleSpec:
    """What ColTran's examples need from an experiment config."""
    num_epochs: int
    resolution: int
    downsample: bool
    downsample_res: int
    random_channel: bool

    @classmethod
    def from_config(cls, config) -> "ExampleSpec":
        return cls(num_epochs=int(config.num_epochs), resolution=int(config.resolution[0]),
                   downsample=bool(config.downsample),
                   downsample_res=int(config.downsample_res),
                   random_channel=bool(config.random_channel))


def get_dataset(config, split: str, batch_size: int, training: bool,
                stats: decode.DecodeStats | None = None, position: int = 0,
                num_examples: int | None = None) -> tf.data.Dataset:
    """Batched example dicts of one split (the original's keys, data/keys.py).

    Args:
      config: experiment config (dataset, data.*, resolution, downsample, ...).
      split: one of SPLITS.
      batch_size: global batch size; training drops the last partial batch.
      training: the training stream (sources.training_stream: a deterministic
        order, `num_epochs` epochs) with random crops and channel slices; each
        example also carries its stream position under sources.POSITION.
      stats: collects the count of unreadable files (a fresh one if None).
      position: where the training stream starts (a resumed run's saved
        position).
      num_examples: keep only the first examples (evaluation).
    """
    spec, examples = SourceSpec.from_config(config), ExampleSpec.from_config(config)
    stats = stats if stats is not None else decode.DecodeStats()
    dataset = indexed_split(spec, split, stats, training, position, examples.num_epochs)
    if num_examples is not None:
        dataset = dataset.take(num_examples)

    def to_example(index, image, label):
        # Randomness is a function of (seed, position): the same example gets the same
        # crop and channel in a resumed run.
        example = make_example(image, label, tf.stack([tf.cast(spec.seed, tf.int64), index]),
                               resolution=examples.resolution, downsample=examples.downsample,
                               downsample_res=examples.downsample_res,
                               random_channel=examples.random_channel, training=training)
        if training:
            example[POSITION] = index
        return example

    dataset = dataset.map(to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return dataset.prefetch(tf.data.AUTOTUNE)
