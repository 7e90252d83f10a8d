"""Where images come from: decoded (image, label) pairs of a split, for both
models' input pipelines (ColTran's examples: data/datasets.py; iColoriT's:
icolorit/data.py).

`config.dataset` picks the source:

* `imagenet`: TFDS `imagenet2012` with the original's splits (train minus its
  last 10,000 images / those 10,000 / the validation split).
* `folder`: any tree of image files under `config.data.data_dir`; a file's
  split follows from a hash of its relative path, so it never changes when
  other files are added; labels are the sorted sub-directory names.
* `tfrecord`: TFRecord files of encoded images (`image` or `image/encoded`
  bytes, optional `label` or `image/class/label`); a record's split follows
  from its index.
* `bundled`: the photographs of the repository's `data/` (installed with the
  package as coltran_tf/bundled_photos/), every split being all of them (for
  tests, demos and docs).
* `tfds:<name>`: any TFDS dataset with an `image` feature (its train split for
  training, validation otherwise).

Training reads `training_stream`: a deterministic order from the seed, the
epoch and the index, so a resumed run continues the very same sequence from
the position its checkpoint holds. Everything else reads `source`: the stored
order.

Splits: `train`, `eval_train` (all training images), `valid`, `test`.
"""

import hashlib
import os
from dataclasses import dataclass

import tensorflow as tf

from coltran_tf.data import decode

DATASETS = ("imagenet", "folder", "tfrecord", "bundled")
TFDS_PREFIX = "tfds:"  # config.dataset = "tfds:<name>": any TFDS dataset with an `image`
SPLITS = ("train", "eval_train", "valid", "test")
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# An installed wheel carries data/ as bundled_photos/; a checkout has data/ beside
# the package.
BUNDLED_DIR = next((d for d in (os.path.join(_PACKAGE_DIR, "bundled_photos"),
                                os.path.join(os.path.dirname(_PACKAGE_DIR), "data"))
                    if os.path.isdir(d)), os.path.join(_PACKAGE_DIR, "bundled_photos"))
IMAGENET_SPLITS = {"train": "train[:-10000]", "valid": "train[-10000:]",
                   "test": "validation", "eval_train": "train"}
# An odd multiplier prime to 10000 scrambles record indices into 0.01% buckets.
_INDEX_HASH = 40503


class DataError(ValueError):
    """A dataset that cannot be read as configured; the message names the fix."""


@dataclass(frozen=True)
class SourceSpec:
    """What a source needs from an experiment config (config.dataset, config.data.*,
    config.seed)."""
    dataset: str
    data_dir: str
    manual_dir: str
    valid_percent: float
    test_percent: float
    shuffle_buffer: int
    seed: int
    skip_grayscale: bool = False

    @classmethod
    def from_config(cls, config) -> "SourceSpec":
        if config.dataset not in DATASETS and not config.dataset.startswith(TFDS_PREFIX):
            raise DataError(f"config.dataset={config.dataset!r} is not one of {list(DATASETS)} "
                            f"or '{TFDS_PREFIX}<name>'.")
        data = config.data
        return cls(dataset=config.dataset, data_dir=data.data_dir, manual_dir=data.manual_dir,
                   valid_percent=float(data.valid_percent),
                   test_percent=float(data.test_percent),
                   shuffle_buffer=int(data.shuffle_buffer), seed=int(config.seed),
                   skip_grayscale=bool(data.skip_grayscale))


def split_index(bucket, spec: SourceSpec):
    """0 (test), 1 (valid) or 2 (train) for a bucket in [0, 100): a Python
    number or a tensor (then an int32 tensor)."""
    past_test = bucket >= spec.test_percent
    past_valid = bucket >= spec.test_percent + spec.valid_percent
    if isinstance(bucket, tf.Tensor):
        return tf.cast(past_test, tf.int32) + tf.cast(past_valid, tf.int32)
    return int(past_test) + int(past_valid)


SPLIT_ORDER = ("test", "valid", "train")  # what split_index counts


def _path_bucket(relative_path: str) -> float:
    digest = hashlib.md5(relative_path.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % 10000 / 100.0


def _wanted(split: str) -> str:
    return "train" if split == "eval_train" else split


def list_image_files(root: str) -> list[str]:
    """Sorted relative paths of the image files under `root` (recursively)."""
    if not root:
        raise DataError("config.data.data_dir is empty; set it to your image folder, e.g. "
                        "--config.data.data_dir=/path/to/photos.")
    if not os.path.isdir(root):
        raise DataError(f"Image folder {root!r} does not exist or is not a directory; check "
                        "--config.data.data_dir.")
    files, _ = decode.find_images(root)
    if not files:
        raise DataError(f"No image files ({', '.join(decode.IMAGE_EXTENSIONS)}) under {root!r}.")
    return files


def folder_files(spec: SourceSpec, split: str) -> tuple[str, list[str], list[int]]:
    """(root, relative paths, labels) of one split of a folder dataset."""
    root = BUNDLED_DIR if spec.dataset == "bundled" else spec.data_dir
    files = list_image_files(root)
    classes = sorted({os.path.dirname(f) for f in files})
    if spec.dataset != "bundled":
        wanted = SPLIT_ORDER.index(_wanted(split))
        files = [f for f in files if split_index(_path_bucket(f), spec) == wanted]
    if not files:
        raise DataError(
            f"Split {split!r} of {root!r} is empty (valid_percent={spec.valid_percent}, "
            f"test_percent={spec.test_percent}); add images, change "
            "--config.data.valid_percent/--config.data.test_percent, or evaluate eval_train.")
    labels = [classes.index(os.path.dirname(f)) for f in files]
    return root, files, labels


def _decoded(dataset, stats: decode.DecodeStats, reader: str):
    """(..., value, name, label) -> (..., image uint8 (H, W, 3), label); unreadable
    ones are dropped and counted in `stats` (reader: decode.safe_decoder's)."""
    fn = decode.safe_decoder(stats, reader)

    def decode_one(*element):
        *kept, value, name, label = element
        image, label, ok = tf.numpy_function(fn, [value, name, label],
                                             [tf.uint8, tf.int32, tf.bool], stateful=False)
        image.set_shape([None, None, 3])
        label.set_shape([])
        return (*kept, image, label, ok)

    dataset = dataset.map(decode_one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.filter(_is_ok).map(_drop_flag)


def _is_ok(*element):
    return element[-1]


def _drop_flag(*element):
    return element[:-1]


def numbered(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """(image, label) -> (index int64, image, label)."""
    return dataset.enumerate().map(_flatten)


def _flatten(index, pair):
    return (index, *pair)


def folder_items(spec: SourceSpec, split: str):
    root, files, labels = folder_files(spec, split)
    paths = [os.path.join(root, f) for f in files]
    return tf.data.Dataset.from_tensor_slices((paths, files, labels)), "path", len(paths)


def tfrecord_files(pattern: str) -> list[str]:
    if not pattern:
        raise DataError("config.data.data_dir is empty; set it to a TFRecord file, directory "
                        "or glob, e.g. --config.data.data_dir='/data/images-*.tfrecord'.")
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*.tfrecord*")
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(f"No TFRecord files match {pattern!r}; check --config.data.data_dir.")
    return files


def tfrecord_items(spec: SourceSpec, split: str):
    files = tfrecord_files(spec.data_dir)
    dataset = tf.data.TFRecordDataset(files).enumerate()
    wanted = _wanted(split)

    def keep(index, record):
        bucket = tf.cast((index * _INDEX_HASH) % 10000, tf.float32) / 100.0
        return tf.equal(split_index(bucket, spec), SPLIT_ORDER.index(wanted))

    def named(index, record):
        return record, tf.strings.join(["record ", tf.strings.as_string(index)]), 0

    return dataset.filter(keep).map(named), "record", spec.shuffle_buffer


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError("This dataset needs tensorflow-datasets: "
                        "pip install -r requirements.txt") from error
    return tfds


def imagenet_items(spec: SourceSpec, split: str):
    """ImageNet's encoded JPEGs in TFDS's stored order (TFDS shuffled them when
    it prepared the dataset; the training stream shuffles them again)."""
    tfds = _import_tfds()
    builder = tfds.builder("imagenet2012", data_dir=spec.data_dir or None)
    manual_dir = spec.manual_dir or os.path.join(builder.data_dir_root, "downloads", "manual")
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except Exception as error:
        raise DataError(
            f"ImageNet is not prepared and could not be built from {manual_dir!r} ({error}). "
            "Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
            "https://image-net.org into that directory (or point "
            "--config.data.manual_dir at them) and run again; TFDS prepares it once.") from error
    dataset = builder.as_dataset(split=IMAGENET_SPLITS[split], shuffle_files=False,
                                 decoders={"image": tfds.decode.SkipDecoding()})
    return (dataset.map(lambda ex: (ex["image"], ex["file_name"], tf.cast(ex["label"], tf.int32))),
            "encoded", spec.shuffle_buffer)


def tfds_items(spec: SourceSpec, split: str):
    """Any TFDS dataset with an `image` feature (`tfds:<name>`): train for the
    training splits, validation otherwise."""
    tfds = _import_tfds()
    name = spec.dataset[len(TFDS_PREFIX):]
    split_name = "train" if _wanted(split) == "train" else "validation"
    dataset = tfds.load(name, split=split_name, data_dir=spec.data_dir or None,
                        shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})

    def named(index, example):
        return (example["image"], tf.strings.join([f"{name} ", tf.strings.as_string(index)]),
                0)

    return dataset.enumerate().map(named), "encoded", spec.shuffle_buffer


def items(spec: SourceSpec, split: str) -> tuple[tf.data.Dataset, str, int]:
    """The undecoded items of a split in their stored order: a dataset of
    (value, name, label), its decode.safe_decoder reader, and the shuffle buffer
    that mixes them (the whole split for a folder, whose items are paths;
    config.data.shuffle_buffer for record streams)."""
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}; choose one of {list(SPLITS)}.")
    if spec.dataset == "imagenet":
        return imagenet_items(spec, split)
    if spec.dataset == "tfrecord":
        return tfrecord_items(spec, split)
    if spec.dataset.startswith(TFDS_PREFIX):
        return tfds_items(spec, split)
    return folder_items(spec, split)


def _is_color(*element):
    """Dataset filter on (..., image, label): keeps what decode.is_grayscale (the
    test colorize uses) rejects."""
    grayscale = tf.numpy_function(decode.is_grayscale, [element[-2]], tf.bool, stateful=False)
    return tf.logical_not(tf.reshape(grayscale, []))


def _finish(dataset, spec: SourceSpec, stats: decode.DecodeStats, reader: str):
    dataset = _decoded(dataset, stats, reader)
    # Colour photos only with spec.skip_grayscale: a colour model learns nothing
    # from grayscale ones.
    return dataset.filter(_is_color) if spec.skip_grayscale else dataset


def source(spec: SourceSpec, split: str, stats: decode.DecodeStats) -> tf.data.Dataset:
    """Decoded (image uint8 (H, W, 3), label int32) pairs of one split, in their
    stored order (evaluation, export, statistics)."""
    dataset, reader, _ = items(spec, split)
    return _finish(dataset, spec, stats, reader)


# A training stream's position: (epoch << 32) + the index within the epoch of the
# next item. Training batches carry each example's position under this key.
POSITION = "position"
EPOCH_STRIDE = 1 << 32


def _window_order(seed, epoch, buffer: int, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The items of one epoch in a shuffled order that depends on (seed, epoch) only:
    windows of `buffer` consecutive items, each permuted by stateless random keys.
    (`Dataset.shuffle` would take its state from TensorFlow's global seed.)"""
    epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])

    def permuted(window, items):
        window_seed = tf.random.experimental.stateless_fold_in(epoch_seed, window)
        order = tf.argsort(tf.random.stateless_uniform(tf.shape(items[0])[:1], window_seed))
        return tf.data.Dataset.from_tensor_slices(
            tuple(tf.gather(column, order) for column in items))

    return dataset.batch(max(int(buffer), 1)).enumerate().flat_map(permuted)


def training_stream(spec: SourceSpec, split: str, stats: decode.DecodeStats,
                    position: int = 0, num_epochs: int = -1) -> tf.data.Dataset:
    """(position int64, image, label) of a split in training order, from `position` on.

    Each epoch is the split's items shuffled in windows of the shuffle buffer
    (a folder: the whole split) by keys drawn from config.seed, the epoch and
    the window, so the order is a function of (seed, epoch, index) alone: a
    resumed run continues the same sequence by skipping the items of the epoch
    it is in (paths for a folder; records are read, not decoded). Nothing but
    the position needs saving.
    """
    dataset, reader, buffer = items(spec, split)
    start_epoch, offset = divmod(int(position), EPOCH_STRIDE)

    def epoch_items(epoch):
        skip = tf.where(tf.equal(epoch, start_epoch), tf.constant(offset, tf.int64), 0)

        def positioned(index, item):
            return (epoch * EPOCH_STRIDE + index, *item)

        return _window_order(spec.seed, epoch, buffer, dataset).enumerate().skip(skip).map(
            positioned)

    epochs = (tf.data.Dataset.counter(start_epoch) if num_epochs < 0
              else tf.data.Dataset.range(start_epoch, num_epochs))
    return _finish(epochs.flat_map(epoch_items), spec, stats, reader)


def indexed_split(spec: SourceSpec, split: str, stats: decode.DecodeStats, training: bool,
                  position: int = 0, num_epochs: int = -1) -> tf.data.Dataset:
    """(index int64, image, label): the training stream from `position` when
    `training` (the index is the stream position), else the split once in its
    stored order (the index counts from 0)."""
    if training:
        return training_stream(spec, split, stats, position, num_epochs)
    return numbered(source(spec, split, stats))


def describe_position(position: int) -> str:
    """A training-stream position as "epoch E, item I"."""
    epoch, index = divmod(int(position), EPOCH_STRIDE)
    return f"epoch {epoch}, item {index}"
