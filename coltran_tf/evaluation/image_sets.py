"""Sets of images to evaluate: a folder, a staged-sampling gen dir, or a TFDS split.

Each set yields Items in a fixed order: a key (a folder image's relative path
without extension; a TFDS example's file name without extension where the
dataset has one, else its position; a gen dir record's position), the images
(one, or num_samples for a gen dir written with several samples per record)
and, for an unreadable file, the error instead. Keys pair generated images
with their ground truth for PSNR.
"""

import dataclasses
import os
import re

import numpy as np

from coltran_tf.data import decode
from coltran_tf.sampling import records
from coltran_tf.utils.image_metrics import EvaluationError

TFDS_PREFIX = "tfds:"


@dataclasses.dataclass
class Item:
    key: str
    images: list = dataclasses.field(default_factory=list)  # (H, W, 3) uint8 each
    error: str | None = None


SAMPLE_SUFFIX = re.compile(r"(.+)_s\d+")  # colorize --num_samples: NAME_s0.png, NAME_s1.png


def _base_name(key: str) -> str:
    """'dir/NAME_s1' -> 'NAME' (a sample of colorize --num_samples); else the base name."""
    name = os.path.basename(key)
    match = SAMPLE_SUFFIX.fullmatch(name)
    return match.group(1) if match else name


class FolderSet:
    """Every image file under a folder (recursively, sorted by relative path)."""

    kind, named = "folder", True

    def __init__(self, root: str, names=None):
        if not os.path.isdir(root):
            raise EvaluationError(f"{root}: no such folder.")
        self.root = root
        files, _ = decode.find_images(root)
        self._paths = {os.path.splitext(f)[0]: f for f in files}
        if len(self._paths) != len(files):
            raise EvaluationError(f"{root} holds two images with one name and different "
                                  "extensions; keep one of each.")
        selected = ""
        if names is not None:  # a protocol's subset: NAME, or NAME_s<k> of colorize samples
            names = set(names)
            self._paths = {key: path for key, path in self._paths.items()
                           if _base_name(key) in names}
            selected = f", {len(self._paths)} of them in the protocol's subset"
        self.description = f"folder {root} ({len(files)} images{selected})"

    @property
    def count(self) -> int:
        return len(self._paths)

    def keys(self):
        return list(self._paths)

    def get(self, key: str) -> Item:
        path = os.path.join(self.root, self._paths[key])
        try:
            return Item(key, [decode.read_image(path)])
        except (OSError, ValueError) as error:
            return Item(key, error=f"{path}: {error}")

    def __iter__(self):
        for key in self._paths:
            yield self.get(key)


class GenDirSet:
    """The records of a staged-sampling output directory (gen<N>.tfrecords), in
    order; a record written with num_samples > 1 holds that many images side by side."""

    kind, named = "gen_dir", False

    def __init__(self, directory: str, num_samples: int | None = None):
        from coltran_tf.sampling import sheets

        if not is_gen_dir(directory):
            raise EvaluationError(f"{directory}: no gen<N>.tfrecords files (the output folder "
                                  "of coltran-sample / the staged sampler).")
        self.directory = directory
        try:
            self.side, self.num_samples = sheets.read_shape(directory, num_samples)
        except ValueError as error:
            raise EvaluationError(str(error)) from None
        files = [path for _, path in records.gen_files(directory)]
        self._count = sum(records.count_records(path) for path in files)
        self._files = files
        self.description = (f"gen dir {directory} ({self._count} records of {self.side}x"
                            f"{self.side}, {self.num_samples} sample(s) each)")

    @property
    def count(self) -> int:
        return self._count

    def __iter__(self):
        import tensorflow as tf

        dataset = tf.data.TFRecordDataset(self._files).map(
            lambda r: records.parse_example(r, self.side, self.side * self.num_samples))
        for index, (image, _) in enumerate(dataset.as_numpy_iterator()):
            image = np.asarray(image, np.uint8)
            yield Item(str(index), [image[:, k * self.side:(k + 1) * self.side]
                                    for k in range(self.num_samples)])


def _stem(name: bytes | str) -> str:
    name = name.decode() if isinstance(name, bytes) else name
    return os.path.splitext(os.path.basename(name))[0]


class TfdsSet:
    """A TFDS split, e.g. tfds:imagenet2012:validation[10000:15000], in TFDS's
    default read order (shuffle_files=False). `names`: keep only the examples
    whose file name (without extension) is listed."""

    kind = "tfds"

    def __init__(self, spec: str, data_dir: str | None = None, names=None):
        import tensorflow_datasets as tfds

        match = re.fullmatch(r"tfds:([^:]+)(?::(.+))?", spec)
        if not match:
            raise EvaluationError(f"{spec!r}: a TFDS set is tfds:NAME[:SPLIT], e.g. "
                                  "tfds:imagenet2012:validation[:5000].")
        self.name, self.split = match.group(1), match.group(2) or "validation"
        try:
            builder = tfds.builder(self.name, data_dir=data_dir or None)
            self._dataset = builder.as_dataset(
                split=self.split, shuffle_files=False,
                decoders={"image": tfds.decode.SkipDecoding()})
        except Exception as error:  # noqa: BLE001 - TFDS raises many kinds; all need the same advice
            raise EvaluationError(
                f"{spec}: TFDS cannot read it ({str(error).splitlines()[0][:300]}). Prepare the "
                "dataset first (ImageNet: the tars in <data_dir>/downloads/manual, then "
                "tfds build imagenet2012) and pass --tfds_data_dir.") from None
        self.named = "file_name" in builder.info.features
        self.names = None if names is None else set(names)
        try:
            self.count = builder.info.splits[self.split].num_examples
        except Exception:  # noqa: BLE001 - unknown until read (e.g. mocked datasets)
            self.count = None
        if self.names is not None:
            if not self.named:
                raise EvaluationError(f"{spec} has no file names to select examples by.")
            self.count = len(self.names)
        size = f"{self.count} images" if self.count is not None else "size known when read"
        self.description = f"TFDS {self.name} split {self.split} ({size})"

    def __iter__(self):
        for index, example in enumerate(self._dataset.as_numpy_iterator()):
            key = _stem(example["file_name"]) if self.named else str(index)
            if self.names is not None and key not in self.names:
                continue
            try:
                yield Item(key, [decode.decode_bytes(example["image"])])
            except ValueError as error:
                yield Item(key, error=f"{self.name} {key}: {error}")


def is_gen_dir(path: str) -> bool:
    return os.path.isdir(path) and any(records.GEN_FILE.match(n) for n in os.listdir(path))


def open_set(spec: str, num_samples: int | None = None, tfds_data_dir: str | None = None,
             names=None):
    """A folder, a gen dir (a folder of gen<N>.tfrecords) or tfds:NAME[:SPLIT];
    `names` keeps a folder's or a TFDS set's images of those file names only."""
    if not spec:
        raise EvaluationError("An image set is empty: pass a folder, a gen dir or tfds:NAME.")
    if spec.startswith(TFDS_PREFIX):
        return TfdsSet(spec, tfds_data_dir, names)
    if not os.path.exists(spec):
        raise EvaluationError(f"{spec}: no such folder (or use tfds:NAME[:SPLIT]).")
    if is_gen_dir(spec):
        return GenDirSet(spec, num_samples)
    return FolderSet(spec, names)


def center_crop_resize(image: np.ndarray, size: int = 256) -> np.ndarray:
    """Central square crop, then area resize with antialias, rounded (the training
    preprocessing of Kumar et al. 2021)."""
    from coltran_tf.data.preprocess import resize_area, square_crop

    return np.asarray(resize_area(square_crop(image, training=False), size), np.uint8)


def resize_whole(image: np.ndarray, size: int = 256) -> np.ndarray:
    """The whole image resized to size x size (aspect not kept), area with antialias."""
    from coltran_tf.data.preprocess import resize_area

    return np.asarray(resize_area(image, size), np.uint8)


PREPROCESSING = {"none": None, "center_crop_256": center_crop_resize,
                 "resize_256": resize_whole}
