"""The staged sampler's TFRecord files, in the original's schema.

One `tf.train.Example` per image: `image`, an int64 list of length H*W*3
(row-major, RGB last; with num_samples > 1 the samples are concatenated along
the width) and `label`, an int64 list of length 1. Ours also carry `height` and
`num_samples` (int64, one each), so that the records alone say how to read them;
the original's readers ignore them. A stage writes
`$logdir/$sample.log_dir/$gen_file.tfrecords`; the next stage reads every
`gen<N>.tfrecords` of that directory in the order N = 0..max. Files written by
the original and by us are interchangeable in both directions.
"""

import os
import re
import tempfile

import numpy as np
import tensorflow as tf

GEN_FILE = re.compile(r"^gen(\d+)\.tfrecords$")
PARTIAL_SUFFIX = ".partial"  # .<gen_file>.partial/: finished batches of an unfinished shard


class GenDataError(ValueError):
    """A directory of generated records that cannot serve as configured."""


def _int64(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def encode_example(image, label: int, num_samples: int | None = None) -> bytes:
    """(H, W, 3) integer image (num_samples square images side by side; default
    W / H) and its label -> a serialized tf.train.Example."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    if num_samples is None:
        num_samples = max(1, image.shape[1] // max(1, image.shape[0]))
    features = {
        "image": _int64(image.astype(np.int64).reshape(-1)),
        "label": _int64([int(label)]),
        "height": _int64([image.shape[0]]), "num_samples": _int64([int(num_samples)]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_example(serialized, height: int, width: int):
    """Graph op: serialized Example -> (image int32 (H, W, 3), label int32)."""
    features = tf.io.parse_single_example(serialized, {
        "image": tf.io.FixedLenFeature([height * width * 3], tf.int64),
        "label": tf.io.FixedLenFeature([1], tf.int64),
    })
    image = tf.reshape(tf.cast(features["image"], tf.int32), [height, width, 3])
    return image, tf.cast(features["label"][0], tf.int32)


def write_records(path: str, images, labels, num_samples: int | None = None) -> str:
    """Writes all records to `path` atomically (temporary name, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                       dir=directory)
    os.close(handle)
    try:
        with tf.io.TFRecordWriter(staging) as writer:
            for image, label in zip(images, labels):
                writer.write(encode_example(image, label, num_samples))
        os.replace(staging, path)
    except BaseException:
        if os.path.exists(staging):
            os.remove(staging)
        raise
    return path


def read_records(path: str, height: int, width: int) -> tuple[list[np.ndarray], list[int]]:
    """(images (H, W, 3) uint8, labels) of every record of one file."""
    images, labels = [], []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature
        image = np.asarray(feature["image"].int64_list.value, np.uint8)
        images.append(image.reshape(height, width, 3))
        labels.append(int(feature["label"].int64_list.value[0]))
    return images, labels


def gen_files(directory: str) -> list[tuple[int, str]]:
    """[(N, path)] of the gen<N>.tfrecords files of `directory`, sorted by N."""
    if not os.path.isdir(directory):
        raise GenDataError(f"gen_data_dir {directory!r} does not exist; point "
                           "--config.sample.gen_data_dir at the previous stage's sample "
                           "directory ($logdir/$sample.log_dir).")
    found = sorted((int(m.group(1)), os.path.join(directory, name))
                   for name in os.listdir(directory) if (m := GEN_FILE.match(name)))
    if not found:
        raise GenDataError(f"No gen<N>.tfrecords files in {directory!r}; run the previous "
                           "stage's sampler there first.")
    return found


def count_records(path: str) -> int:
    return sum(1 for _ in tf.data.TFRecordDataset(path))


def record_length(path: str) -> int:
    """Length of the `image` list of the first record of a file (0 if empty)."""
    for record in tf.data.TFRecordDataset(path).take(1):
        example = tf.train.Example.FromString(record.numpy())
        return len(example.features.feature["image"].int64_list.value)
    return 0


def record_shape(path: str, num_samples: int | None = None) -> tuple | None:
    """(side, num_samples) of a file's first record (None for an empty file): from
    its `height`/`num_samples` features, or for records without them (the
    original's) a square image, num_samples times side by side (`num_samples`,
    default 1)."""
    for record in tf.data.TFRecordDataset(path).take(1):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        length = len(feature["image"].int64_list.value) if "image" in feature else 0
        if "height" in feature and "num_samples" in feature:
            side = int(feature["height"].int64_list.value[0])
            stored = int(feature["num_samples"].int64_list.value[0])
            if side * side * stored * 3 != length:
                raise GenDataError(f"{path}: the first record's image has {length} values, "
                                   f"not {side}x{side * stored}x3 as its shape features say.")
            return side, stored
        count = num_samples or 1
        side = int(round((length / (3 * count)) ** 0.5))
        if side * side * 3 * count != length:
            raise GenDataError(
                f"{path}: records of {length} values, which is not R*R*3*{count} for any R "
                f"(they carry no shape): pass --num_samples=N as they were written.")
        return side, count
    return None


def gen_dir_shape(directory: str, num_samples: int | None = None) -> tuple[int, int]:
    """(side, num_samples) of a directory's records, the same in every file;
    GenDataError when there are no records or the files disagree."""
    shapes = {}
    for _, path in gen_files(directory):
        shape = record_shape(path, num_samples)
        if shape is not None:
            shapes[os.path.basename(path)] = shape
    if not shapes:
        raise GenDataError(f"{directory!r} holds no records (no gen<N>.tfrecords with "
                           "records): is it the output folder of coltran-sample?")
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name}: {side}x{side * count}x3 ({count} sample(s))"
                           for name, (side, count) in sorted(shapes.items()))
        raise GenDataError(f"{directory!r} mixes records of different runs ({listed}); "
                           "keep one run's gen<N>.tfrecords per folder.")
    return next(iter(shapes.values()))


def read_gen_dir(directory: str, resolution: int = 64, batch_size: int = 1,
                 skip_batches: int = 0, num_batches: int | None = None) -> tf.data.Dataset:
    """Batches of (images (B, R, R, 3) int32, labels (B,)) of a previous stage.

    Args:
      directory: the previous stage's sample directory.
      resolution: side of the stored images (64 for the colorizer's output).
      batch_size, skip_batches: as config.sample; the first
        skip_batches * batch_size records are skipped (multi-host sharding).
      num_batches: how many batches are needed; raises GenDataError naming the
        shortfall when the directory holds fewer records.
    """
    shards = gen_files(directory)
    indices = [n for n, _ in shards]
    if len(set(indices)) != len(indices):
        raise GenDataError(f"{directory!r} has two files for the same gen index (e.g. gen1 "
                           "and gen01); run coltran-check-gen-dir on it and remove one.")
    files = [path for _, path in shards]
    expected = resolution * resolution * 3
    length = record_length(files[0])
    if length != expected:
        raise GenDataError(
            f"Records in {files[0]} hold {length} values, not {resolution}x{resolution}x3 = "
            f"{expected}: they were written at another resolution or with num_samples > 1. "
            "Regenerate the previous stage with num_samples=1 at this resolution.")
    if num_batches is not None:
        available = sum(count_records(path) for path in files)
        needed = (skip_batches + num_batches) * batch_size
        if available < needed:
            raise GenDataError(
                f"{directory!r} holds {available} records but {needed} are needed "
                f"(skip_batches={skip_batches}, {num_batches} batches of {batch_size}); "
                "generate more with the previous stage or lower num_outputs.")
    dataset = tf.data.TFRecordDataset(files).map(
        lambda record: parse_example(record, resolution, resolution))
    dataset = dataset.skip(skip_batches * batch_size).batch(batch_size)
    return dataset if num_batches is None else dataset.take(num_batches)


def _check_file(path: str, length: int) -> tuple[int, list[str]]:
    """(records, problems) of one gen file."""
    problems, count = [], 0
    name = os.path.basename(path)
    try:
        for count, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator(), 1):
            feature = tf.train.Example.FromString(record).features.feature
            image = feature["image"].int64_list.value if "image" in feature else []
            label = feature["label"].int64_list.value if "label" in feature else []
            if len(image) != length:
                problems.append(f"{name} record {count - 1}: image has {len(image)} values, "
                                f"expected {length}")
            elif min(image) < 0 or max(image) > 255:
                problems.append(f"{name} record {count - 1}: values outside 0..255")
            if len(label) != 1:
                problems.append(f"{name} record {count - 1}: label has {len(label)} values")
    except (tf.errors.OpError, ValueError) as error:
        problems.append(f"{name}: unreadable after {count} records ({type(error).__name__})")
    return count, problems


def check_gen_dir(directory: str, resolution: int | None = None, num_samples: int | None = None,
                  expected_records: int | None = None) -> tuple[list[str], list[str]]:
    """Validates a sample directory: (report lines, problems).

    Checks shard names (gen<N>, missing or duplicate N, leftover temporary
    files of an interrupted write), every record's image length
    (R * R * num_samples * 3), value range and label, and the total count.
    R and num_samples come from the records themselves (record_shape) unless
    given; a directory that mixes shapes is a problem.
    """
    shards = gen_files(directory)
    problems = []
    if resolution is None:
        try:
            resolution, num_samples = gen_dir_shape(directory, num_samples)
        except GenDataError as error:  # no records, or files of different shapes
            shapes = [shape for _, path in shards if (shape := record_shape(path, num_samples))]
            if shapes:
                problems.append(str(error))
            resolution, num_samples = shapes[0] if shapes else (0, 1)
    num_samples = num_samples or 1
    length = resolution * resolution * num_samples * 3
    lines, total = [], 0
    indices = [n for n, _ in shards]
    duplicates = sorted({n for n in indices if indices.count(n) > 1})
    if duplicates:
        problems.append(f"duplicate shard indices {duplicates} (e.g. gen1 and gen01)")
    missing = sorted(set(range(max(indices) + 1)) - set(indices))
    if missing:
        problems.append(f"missing shards: {', '.join(f'gen{n}' for n in missing)}")
    leftovers = sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))
    if leftovers:
        problems.append(f"temporary files of an interrupted write: {leftovers} (re-run the "
                        "sampler to finish them)")
    unfinished = sorted(n for n in os.listdir(directory) if n.endswith(PARTIAL_SUFFIX))
    if unfinished:
        problems.append(f"unfinished shards {unfinished} (batches of an interrupted run); "
                        "re-run the sampler with the same flags to complete them")
    for _, path in shards:
        count, file_problems = _check_file(path, length)
        total += count
        problems += file_problems
        lines.append(f"{os.path.basename(path):<20} {count:>7} records")
    lines.append(f"{'total':<20} {total:>7} records of {resolution}x{resolution * num_samples}x3")
    if expected_records is not None and total != expected_records:
        problems.append(f"{total} records, expected {expected_records}")
    return lines, problems
