"""Robust image decoding: every common file flavour becomes 8-bit RGB.

Folder and TFRecord datasets decode with Pillow inside `tf.data` (through
`tf.numpy_function`) so that grayscale, alpha, palette, 16-bit, float and CMYK
files are all converted the same way, and a corrupt file is skipped and
counted instead of ending a long run (the models take RGB 0..255).
"""

import io
import os
import threading

import numpy as np
from absl import logging
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow refuses images above ~179 MP by default; photographs this large are
# real (panoramas), so allow them but still stop decompression bombs.
Image.MAX_IMAGE_PIXELS = 400_000_000

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm")


class DecodeStats:
    """Thread-safe count of the files a pipeline had to skip, with reasons."""

    def __init__(self, max_reasons: int = 20):
        self._lock = threading.Lock()
        self.decoded = 0
        self.skipped = 0
        self.reasons: list[str] = []
        self._max_reasons = max_reasons

    def ok(self) -> None:
        with self._lock:
            self.decoded += 1

    def skip(self, name: str, error: Exception) -> None:
        with self._lock:
            self.skipped += 1
            if len(self.reasons) < self._max_reasons:
                self.reasons.append(f"{name}: {type(error).__name__}: {error}")
        logging.warning("Skipping unreadable image %s (%s: %s)", name, type(error).__name__,
                        error)

    def summary(self) -> str:
        text = f"{self.skipped} unreadable image(s) skipped, {self.decoded} decoded"
        if self.reasons:
            text += "; first reasons:\n  " + "\n  ".join(self.reasons)
        return text


def _to_8bit(image: Image.Image, strip_pixels: int = 1 << 20) -> Image.Image:
    """16-bit, 32-bit integer and float single-channel images -> mode 'L', in
    row strips (no full-size temporaries beyond the 8-bit result)."""
    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return image
    low, high = image.getextrema()
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    step = max(1, strip_pixels // max(width, 1))
    for top in range(0, height, step):
        array = np.asarray(image.crop((0, top, width, min(height, top + step))))
        if image.mode == "F":
            scale = 255.0 if high <= 1.0 else 1.0
            out[top:top + step] = np.round(np.clip(array * scale, 0, 255))
        else:  # integer images wider than 8 bits: 16-bit PNG/TIFF keep the top byte
            shift = 8 if high > 255 or image.mode.startswith("I;16") else 0
            out[top:top + step] = (array.astype(np.uint32) >> shift).clip(0, 255)
    return Image.fromarray(out, "L")


def upright(image: Image.Image) -> Image.Image:
    """The image turned by its EXIF orientation; metadata that cannot be read
    (malformed EXIF fails in many ways) is ignored and the image kept as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001
        return image


def to_rgb_image(image: Image.Image) -> Image.Image:
    """Any Pillow image -> a Pillow RGB image (8 bits per channel), upright,
    alpha composited over white."""
    image = _to_8bit(upright(image))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        if image.mode != "RGBA":
            image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)),
                                      image)  # rebinding frees each copy in turn
    return image if image.mode == "RGB" else image.convert("RGB")


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow image -> (H, W, 3) uint8 RGB, alpha composited over white."""
    array = np.asarray(to_rgb_image(image), dtype=np.uint8)
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"decoded to an empty image of shape {array.shape}")
    return array


def find_images(root: str, exclude: str | None = None,
                follow_links: bool = True) -> tuple[list[str], int]:
    """(sorted relative paths of the image files under `root`, recursively; the
    number of other files). Hidden files and folders are skipped, and `exclude`
    (e.g. an output folder inside the input)."""
    exclude = os.path.abspath(exclude) if exclude else None
    found, others = [], 0
    for directory, subdirs, names in os.walk(root, followlinks=follow_links):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".")
                            and os.path.abspath(os.path.join(directory, d)) != exclude)
        for name in names:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(directory, name), root))
            else:
                others += 1
    return sorted(found), others


def decode_bytes(data: bytes) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8; raises ValueError on bad data."""
    if not data:
        raise ValueError("empty file")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError("not an image Pillow can read (corrupt, or another format)") from None
    with image:
        try:
            image.load()
        except (OSError, SyntaxError) as error:  # truncated or corrupt image data
            raise ValueError(f"corrupt image data ({error})") from None
        return to_rgb(image)


def read_image(path: str) -> np.ndarray:
    """An image file -> (H, W, 3) uint8; raises a clear error when unreadable."""
    with open(path, "rb") as f:
        return decode_bytes(f.read())


_EMPTY = np.zeros((1, 1, 3), np.uint8)


def _feature(features, *keys):
    for key in keys:
        if key in features.feature:
            return features.feature[key]
    return None


def parse_record(record: bytes) -> tuple[np.ndarray, int]:
    """A serialized tf.train.Example of an encoded image -> (image, label).

    The image is bytes under `image` or `image/encoded`; the label, optional,
    an int64 under `label` or `image/class/label` (0 when absent).
    """
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(record)
    image = _feature(example.features, "image", "image/encoded")
    if image is None or not image.bytes_list.value:
        raise ValueError("record has no encoded image under 'image' or 'image/encoded'")
    label = _feature(example.features, "label", "image/class/label")
    label = int(label.int64_list.value[0]) if label is not None and label.int64_list.value else 0
    return decode_bytes(image.bytes_list.value[0]), label


def _from_path(value: bytes, label: int):
    return read_image(value.decode("utf-8")), label


def _from_record(value: bytes, label: int):
    image, parsed = parse_record(value)
    return image, max(parsed, 0)


def _from_encoded(value: bytes, label: int):
    return decode_bytes(value), label


_READERS = {"path": _from_path, "record": _from_record, "encoded": _from_encoded}


def safe_decoder(stats: DecodeStats, source: str):
    """A numpy function (value, name, label) -> (image, label, ok) that never raises.

    Args:
      stats: counts what was decoded and what was skipped (with reasons).
      source: "path" (value is a file path; the label is kept), "record"
        (value is a serialized tf.train.Example that holds the label) or
        "encoded" (value is the encoded image; the label is kept).
    """
    read = _READERS[source]

    def decode(value: bytes, name: bytes, label):
        try:
            image, label = read(value, int(label))
        except Exception as error:  # noqa: BLE001 - any failure means "skip this one"
            stats.skip(name.decode("utf-8", "replace"), error)
            return _EMPTY, np.int32(0), False
        stats.ok()
        return image, np.int32(label), True

    return decode


def is_grayscale(rgb: np.ndarray, tolerance: int = 6) -> bool:
    """True when (nearly) every pixel of an (H, W, 3) image has R = G = B: 99% of
    the pixels (sampled on a grid of about 250,000) spread over at most
    `tolerance` levels, so JPEG noise in a grayscale photo is tolerated."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))
    sample = np.asarray(rgb)[::step, ::step].astype(np.int16)
    spread = sample.max(axis=-1) - sample.min(axis=-1)
    return float(np.percentile(spread, 99)) <= tolerance
