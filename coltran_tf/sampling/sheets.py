"""Generated TFRecords -> PNG files and contact sheets."""

import os

import numpy as np
from PIL import Image

from coltran_tf.sampling.records import gen_dir_shape, gen_files, read_records
from coltran_tf.utils.images import save_png


def infer_resolution(directory: str, num_samples: int | None = None) -> int:
    """Side R of a directory's images, from the records (records.gen_dir_shape);
    `num_samples` must agree with the records' own where they carry one."""
    return read_shape(directory, num_samples)[0]


def read_shape(directory: str, num_samples: int | None = None) -> tuple[int, int]:
    """(side, num_samples) of a directory's records; ValueError if a given
    num_samples disagrees with what the records say."""
    side, stored = gen_dir_shape(directory, num_samples)
    if num_samples is not None and stored != num_samples:
        raise ValueError(f"The records of {directory!r} hold {stored} sample(s) per image, "
                         f"not {num_samples}; drop --num_samples (the records say it).")
    return side, stored


def read_images(directory: str, num_samples: int | None = None
                ) -> list[tuple[np.ndarray, int]]:
    """[(image (R, R * num_samples, 3) uint8, label)] of all gen files in order."""
    side, count = read_shape(directory, num_samples)
    out = []
    for _, path in gen_files(directory):
        images, labels = read_records(path, side, side * count)
        out.extend(zip(images, labels))
    return out


def write_pngs(directory: str, output_dir: str, num_samples: int | None = None,
               split_samples: bool = False, items=None) -> list[str]:
    """Writes <index>_label<label>[_s<k>].png for every record; returns the paths.

    `items` are the directory's records when the caller has read them already.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    num_samples = read_shape(directory, num_samples)[1]
    items = read_images(directory, num_samples) if items is None else items
    for index, (image, label) in enumerate(items):
        parts = np.split(image, num_samples, axis=1) if split_samples else [image]
        for k, part in enumerate(parts):
            suffix = f"_s{k}" if split_samples else ""
            path = os.path.join(output_dir, f"{index:05d}_label{label}{suffix}.png")
            save_png(part, path)
            paths.append(path)
    return paths


def contact_sheet(columns: list[list[np.ndarray]], cell: int = 128, gap: int = 4,
                  max_width: int | None = None, resample=Image.NEAREST) -> np.ndarray:
    """Rows of images side by side, each resized to height `cell`.

    Args:
      columns: one list of (H, W, 3) or (H, W, 1) images per column (a stage,
        the grayscale input, the ground truth), all of the same length.
      max_width: images wider than this at height `cell` are shrunk to this
        width instead (panoramas); None: no limit.
      resample: Pillow filter (nearest shows model pixels as they are).
    """
    rows = len(columns[0])
    if any(len(column) != rows for column in columns):
        raise ValueError(f"All columns need {rows} images, got {[len(c) for c in columns]}.")

    def fit(image):
        image = np.asarray(image, np.uint8)
        image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
        scale = cell / image.shape[0]
        if max_width is not None:
            scale = min(scale, max_width / image.shape[1])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        return np.asarray(Image.fromarray(image).resize(size, resample))

    columns = [[fit(image) for image in column] for column in columns]
    widths = [max(image.shape[1] for image in column) for column in columns]
    sheet = np.full((rows * (cell + gap) + gap, sum(widths) + gap * (len(widths) + 1), 3), 255,
                    np.uint8)
    for r in range(rows):
        x = gap
        for column, width in zip(columns, widths):
            image = column[r]
            top = gap + r * (cell + gap) + (cell - image.shape[0]) // 2
            sheet[top:top + image.shape[0], x:x + image.shape[1]] = image
            x += width + gap
    return sheet
