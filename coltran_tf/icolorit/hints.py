"""Hints: training simulation (Yun et al. 2023, Sec. 3.1), the official fixed hint files (Sec. 4.1)
and user hints in original-image coordinates.

A hint mask is (112, 112) over the 2x2 cells of the 224x224 model input,
row-major; like the official code, 1 = NOT hinted (`mask_not_hint`).
"""

import os
import random

import numpy as np
import tensorflow as tf

from coltran_tf.icolorit.model import HINT_SIZE, IMAGE_SIZE

CELLS = IMAGE_SIZE // HINT_SIZE  # 112
MAX_TRAIN_HINTS = 128
EVAL_HINT_COUNTS = (0, 1, 2, 5, 10, 20, 50, 100, 200)


def random_hint_mask(seed, max_hints: int = MAX_TRAIN_HINTS, cells: int = CELLS):
    """(cells*cells,) float32 mask_not_hint with n ~ U{0..max_hints} distinct hinted
    cells, chosen uniformly (tf, stateless: usable inside tf.data)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    count = tf.random.stateless_uniform([], seeds[0], 0, max_hints + 1, dtype=tf.int32)
    order = tf.argsort(tf.random.stateless_uniform([cells * cells], seeds[1]))
    hinted = tf.scatter_nd(order[:count, None], tf.ones([count]), [cells * cells])
    return 1.0 - hinted


def read_hint_file(path: str, cells: int = CELLS) -> np.ndarray:
    """An official `h2-nN/<stem>.txt` file -> (cells*cells,) float32 mask_not_hint.

    Each line "r c": row then column of the top-left pixel of a 2x2 cell in the
    224x224 image (even, 0..222); duplicates are allowed and count once.
    """
    mask = np.ones((cells, cells), np.float32)
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row, col = (int(v) for v in line.split())
            except ValueError:
                raise ValueError(f"{path}:{number}: expected 'row col', got {line.strip()!r}."
                                 ) from None
            if not (0 <= row < cells * HINT_SIZE and 0 <= col < cells * HINT_SIZE):
                raise ValueError(f"{path}:{number}: hint ({row}, {col}) is outside the "
                                 f"{cells * HINT_SIZE}x{cells * HINT_SIZE} image.")
            mask[row // HINT_SIZE, col // HINT_SIZE] = 0.0
    return mask.reshape(-1)


def make_hint_files(root: str, stems, counts=EVAL_HINT_COUNTS, seed: int = 1234) -> int:
    """Writes `root/h2-n<N>/<stem>.txt` like the official generator: Python `random`
    seeded once; for each N, for each stem (sorted), N lines "r c" with each
    coordinate randint(0, 111) * 2 (with replacement). Existing files are kept
    (the draws still advance, so the others match a full run). Returns the
    number of files written."""
    rng = random.Random(seed)
    written = 0
    for count in counts:
        folder = os.path.join(root, f"h2-n{count}")
        os.makedirs(folder, exist_ok=True)
        for stem in sorted(stems):
            lines = [f"{rng.randint(0, CELLS - 1) * HINT_SIZE} "
                     f"{rng.randint(0, CELLS - 1) * HINT_SIZE}\n" for _ in range(count)]
            path = os.path.join(folder, f"{stem}.txt")
            if os.path.exists(path):
                continue
            tmp = os.path.join(folder, f".{stem}.txt.tmp")
            with open(tmp, "w") as f:
                f.writelines(lines)
            os.replace(tmp, path)
            written += 1
    return written
