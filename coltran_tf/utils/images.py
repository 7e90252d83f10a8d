"""Writing images: atomic PNG files."""

import os

import numpy as np
from PIL import Image

TMP_SUFFIX = ".tmp.png"  # a file being written; a killed run may leave one behind


def save_png(image: np.ndarray, path: str) -> None:
    """Writes a PNG atomically (PATH + TMP_SUFFIX, then rename), creating its directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    staging = path + TMP_SUFFIX
    try:
        Image.fromarray(np.asarray(image, np.uint8)).save(staging)
        os.replace(staging, path)
    except BaseException:
        if os.path.exists(staging):
            os.remove(staging)
        raise
