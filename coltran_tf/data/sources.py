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

Splits: `train`, `eval_train` (all training images), `valid`, `test`.
"""

import hashlib
import os
from dataclasses import dataclass

import tensorflow as tf

from coltran_tf.data import decode

DATASETS = ("imagenet", "folder", "tfrecord", "bundled")
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
        if config.dataset not in DATASETS:
            raise DataError(f"config.dataset={config.dataset!r} is not one of {list(DATASETS)}.")
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


def _is_ok(image, ok, label):
    return ok


def _drop_flag(image, ok, label):
    return image, label


def _decoded(dataset, stats: decode.DecodeStats, source: str):
    """(value, name, label) -> (image uint8 (H, W, 3), label); unreadable ones are
    dropped and counted in `stats` (source: "path" or "record")."""
    fn = decode.safe_decoder(stats, source)

    def decode_one(value, name, label):
        image, label, ok = tf.numpy_function(fn, [value, name, label],
                                             [tf.uint8, tf.int32, tf.bool], stateful=False)
        image.set_shape([None, None, 3])
        label.set_shape([])
        return image, ok, label

    dataset = dataset.map(decode_one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.filter(_is_ok).map(_drop_flag)


def folder_source(spec: SourceSpec, split: str, stats: decode.DecodeStats, shuffle_seed=None):
    root, files, labels = folder_files(spec, split)
    paths = [os.path.join(root, f) for f in files]
    dataset = tf.data.Dataset.from_tensor_slices((paths, files, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    return _decoded(dataset, stats, "path")


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


def tfrecord_source(spec: SourceSpec, split: str, stats: decode.DecodeStats):
    files = tfrecord_files(spec.data_dir)
    dataset = tf.data.TFRecordDataset(files).enumerate()
    wanted = _wanted(split)

    def keep(index, record):
        bucket = tf.cast((index * _INDEX_HASH) % 10000, tf.float32) / 100.0
        return tf.equal(split_index(bucket, spec), SPLIT_ORDER.index(wanted))

    def named(index, record):
        return record, tf.strings.join(["record ", tf.strings.as_string(index)]), 0

    return _decoded(dataset.filter(keep).map(named), stats, "record")


def imagenet_source(spec: SourceSpec, split: str, shuffle_files: bool):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError("config.dataset='imagenet' needs tensorflow-datasets: "
                        "pip install -r requirements.txt") from error
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
    read_config = tfds.ReadConfig(shuffle_seed=spec.seed)
    dataset = builder.as_dataset(split=IMAGENET_SPLITS[split], shuffle_files=shuffle_files,
                                 read_config=read_config)
    return dataset.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)))


def _is_color(image, label):
    """Dataset filter: keeps what decode.is_grayscale (the test colorize uses) rejects."""
    grayscale = tf.numpy_function(decode.is_grayscale, [image], tf.bool, stateful=False)
    return tf.logical_not(tf.reshape(grayscale, []))


def source(spec: SourceSpec, split: str, stats: decode.DecodeStats, training: bool, seed: int):
    """Decoded (image uint8 (H, W, 3), label int32) pairs of one split (colour
    photos only with spec.skip_grayscale: a colour model learns nothing from
    grayscale ones)."""
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}; choose one of {list(SPLITS)}.")
    if spec.dataset == "imagenet":
        dataset = imagenet_source(spec, split, shuffle_files=training)
    elif spec.dataset == "tfrecord":
        dataset = tfrecord_source(spec, split, stats)
    else:
        dataset = folder_source(spec, split, stats, shuffle_seed=seed if training else None)
    if spec.skip_grayscale:
        dataset = dataset.filter(_is_color)
    return dataset
