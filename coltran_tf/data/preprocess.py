"""The original ColTran preprocessing (Kumar et al. 2021, Sec. 5 and App. A: a
central or random square crop, area-resized to 256 and to 64), as graph ops.

Every function works eagerly and inside `tf.data`. Randomness is stateless and
seeded per example, so that a pipeline is reproducible whatever its
parallelism, and one device or many see exactly the same examples.
"""

import tensorflow as tf

from coltran_tf.data import keys


def square_crop(image, training: bool, seed=None):
    """(H, W, C) -> (S, S, C), S = min(H, W): random for training, else central."""
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    if training:
        return tf.image.stateless_random_crop(image, tf.stack([side, side, shape[2]]), seed=seed)
    return tf.image.resize_with_crop_or_pad(image, side, side)


def resize_area(image, size: int):
    """Area resize with antialias, rounded, int32 (used downwards and upwards).

    Upwards, an area resize is block replication, which is what the spatial
    upsampler was trained on as its blurry input.
    """
    resized = tf.image.resize(image, [size, size], method="area", antialias=True)
    return tf.cast(tf.round(resized), tf.int32)


def make_example(image, label, seed, *, resolution: int, downsample: bool,
                 downsample_res: int, random_channel: bool, training: bool) -> dict:
    """One example dict of the original's keys from a decoded RGB image.

    Args:
      image: (H, W, 3) integer RGB in 0..255, any size.
      label: int scalar.
      seed: (2,) int seed of this example (stateless random ops).
      resolution: side of `targets`.
      downsample: also produce `targets_{downsample_res}` and its `_up_back`.
      downsample_res: low resolution (64 in the paper).
      random_channel: add a random channel slice (upsampler training only).
      training: random crop and channel slices; central crop otherwise.

    Returns:
      {"targets": (R, R, 3) int32, "label": int32, ["targets_64",
      "targets_64_up_back"], ["targets_slice", "channel_index", ...]}.
    """
    seed = tf.cast(seed, tf.int64)
    crop = square_crop(image, training, seed=seed)
    targets = resize_area(crop, resolution)
    example = {keys.targets(): targets, keys.LABEL: tf.cast(label, tf.int32)}
    if downsample:
        low = resize_area(targets, downsample_res)
        example[keys.targets(downsample_res)] = low
        example[keys.targets(downsample_res, up_back=True)] = resize_area(low, resolution)
    if random_channel and training:
        channel_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        channel = tf.random.stateless_uniform([], seed=channel_seed, minval=0, maxval=3,
                                              dtype=tf.int32)
        targets_slice = tf.gather(targets, channel[None], axis=-1)  # static (R, R, 1)
        example[keys.targets(channel_slice=True)] = targets_slice
        example[keys.CHANNEL_INDEX] = channel
        if downsample:
            low_slice = resize_area(targets_slice, downsample_res)
            example[keys.targets(downsample_res, channel_slice=True)] = low_slice
            example[keys.targets(downsample_res, channel_slice=True, up_back=True)] = \
                resize_area(low_slice, resolution)
    return example
