"""Training and evaluation inputs (Yun et al. 2023, Sec. 3.1 and 4.1).

Sources: `config.dataset` = folder | tfrecord | imagenet | bundled |
`tfds:<name>` (the shared readers of data/sources.py: unreadable files are
skipped and counted).
Training: RandomResizedCrop(224) (area 0.08..1, ratio 3/4..4/3, bilinear; if no
crop fits in 10 tries, the whole image), Lab, and a random hint mask.
Evaluation: the image squeezed to 224x224 (bilinear), no hints.
"""

import tensorflow as tf

from coltran_tf.data import decode, sources
from coltran_tf.icolorit.color import normalize_lab, rgb_to_lab
from coltran_tf.icolorit.hints import random_hint_mask


def random_resized_crop(image, seed, size: int, scale, ratio):
    """(H, W, 3) uint8 -> (size, size, 3) float32 in [0, 1] (stateless seed)."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), seed=seed,
        area_range=scale, aspect_ratio_range=ratio, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, crop_size)
    return tf.image.resize(tf.cast(crop, tf.float32) / 255.0, [size, size], "bilinear")


def get_dataset(config, split: str, batch_size: int, training: bool,
                stats: decode.DecodeStats | None = None, position: int = 0):
    """Batches of {"lab": (B, 224, 224, 3) normalized Lab, "mask": (B, 12544)
    mask_not_hint}; evaluation batches carry all-ones masks (no hints).
    Training batches come from the training stream from `position` on
    (sources.training_stream) and carry each example's position under
    sources.POSITION; crops and hints are a function of (seed, position)."""
    stats = stats if stats is not None else decode.DecodeStats()
    spec = sources.SourceSpec.from_config(config)
    dataset = sources.indexed_split(spec, split, stats, training, position)
    size = int(config.image_size)

    def to_example(index, image, label):
        example_seed = tf.stack([tf.cast(spec.seed, tf.int64), index])
        crop_seed, hint_seed = tf.unstack(tf.random.experimental.stateless_split(
            example_seed, 2))
        if training:
            rgb = random_resized_crop(image, crop_seed, size, config.crop_scale,
                                      config.crop_ratio)
            mask = random_hint_mask(hint_seed, int(config.max_hints), size // 2)
        else:
            rgb = tf.image.resize(tf.cast(image, tf.float32) / 255.0, [size, size], "bilinear")
            mask = tf.ones([(size // 2) ** 2])
        lab = normalize_lab(rgb_to_lab(tf.clip_by_value(rgb, 0.0, 1.0)))
        example = {"lab": lab, "mask": mask}
        if training:
            example[sources.POSITION] = index
        return example

    dataset = dataset.map(to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
