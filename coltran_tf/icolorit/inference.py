"""Colorize one photo of any size from point hints in its own coordinates.

The model sees the photo squeezed to 224x224 (as the official demo: resize ignoring the
aspect ratio); the predicted ab is resized back and joined with the photo's
own full-resolution L, so the result keeps every detail of the original.
"""

import json
import weakref

import numpy as np
import tensorflow as tf
from PIL import Image

from coltran_tf.icolorit.color import AB_NORM, L_CENT, L_NORM, lab_to_uint8, rgb_to_lab
from coltran_tf.icolorit.hints import CELLS
from coltran_tf.icolorit.model import HINT_SIZE, IMAGE_SIZE


class HintError(ValueError):
    """A hint that cannot be used (names the hint and the fix)."""


def hint_ab(color) -> np.ndarray:
    """A hint colour -> its (a, b): 3 values are sRGB 0..255, 2 values are (a, b)."""
    return hints_ab([color])[0]


def hints_ab(colors) -> np.ndarray:
    """Hint colours -> (N, 2) (a, b), converted together (one colour conversion for
    every rgb hint): [r, g, b] in 0..255 or [a, b]."""
    ab = np.zeros((len(colors), 2), np.float32)
    rgb_rows, rgb_values = [], []
    for number, color in enumerate(colors):
        color = np.asarray(color, np.float32).reshape(-1)
        if color.size == 2:
            ab[number] = color
        elif color.size == 3:
            if color.min() < 0 or color.max() > 255:
                raise HintError(f"RGB hint colour {color.tolist()} must be in 0..255.")
            rgb_rows.append(number)
            rgb_values.append(color)
        else:
            raise HintError(f"A hint colour is [r, g, b] (0..255) or [a, b], got "
                            f"{color.tolist()[:4]}.")
    if rgb_rows:
        ab[rgb_rows] = np.asarray(rgb_to_lab(np.stack(rgb_values) / 255.0))[:, 1:]
    return ab


def hint_grid(ys, xs, ab, height: int, width: int) -> np.ndarray:
    """Hint positions (N,) in (height, width) pixels and their (N, 2) ab ->
    (224, 224, 3) [a_hint/110, b_hint/110, mask] on the 2x2 cell grid.

    A hint lands in the cell that holds its pixel after the squeeze to 224; a
    later hint in the same cell replaces an earlier one.
    """
    channels = np.zeros((CELLS, CELLS, 3), np.float32)
    ys, xs = np.asarray(ys, np.float64), np.asarray(xs, np.float64)
    if len(ys):
        rows = (np.floor(ys * IMAGE_SIZE / height).astype(np.int64)) // HINT_SIZE
        cols = (np.floor(xs * IMAGE_SIZE / width).astype(np.int64)) // HINT_SIZE
        cells = rows * CELLS + cols
        # The last hint of each cell: unique over the reversed order keeps first hits.
        _, last = np.unique(cells[::-1], return_index=True)
        keep = len(cells) - 1 - last
        values = np.concatenate([np.asarray(ab, np.float32)[keep] / AB_NORM,
                                 np.ones((len(keep), 1), np.float32)], axis=-1)
        channels.reshape(-1, 3)[cells[keep]] = values
    return np.repeat(np.repeat(channels, HINT_SIZE, axis=0), HINT_SIZE, axis=1)


def hint_channels(hints, height: int, width: int) -> np.ndarray:
    """Hints [(y, x, colour), ...] in original (height, width) pixels ->
    (224, 224, 3) [a_hint/110, b_hint/110, mask] (see hint_grid)."""
    ys, xs, colors = [], [], []
    for number, hint in enumerate(hints):
        try:
            y, x, color = hint
        except (TypeError, ValueError):
            raise HintError(f"Hint {number}: expected (y, x, colour), got "
                            f"{repr(hint)[:40]}.") from None
        if not (0 <= y < height and 0 <= x < width):
            raise HintError(f"Hint {number} at (y={y}, x={x}) is outside the "
                            f"{width}x{height} image.")
        ys.append(y)
        xs.append(x)
        colors.append(color)
    return hint_grid(ys, xs, hints_ab(colors), height, width)


_Y_ROW = np.array([0.212671, 0.715160, 0.072169], np.float32)  # sRGB linear -> Y (D65)
_ROWS_PER_CHUNK = 1 << 20  # pixels per chunk of the full-resolution conversions


def lightness_of(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 CIE L (the L of rgb_to_lab), computed in
    row chunks so that no full-size float temporaries exist."""
    height, width = rgb.shape[:2]
    out = np.empty((height, width), np.float32)
    step = max(1, _ROWS_PER_CHUNK // max(width, 1))
    for top in range(0, height, step):
        value = rgb[top:top + step].astype(np.float32) / 255.0
        linear = np.where(value > 0.04045, ((value + 0.055) / 1.055) ** 2.4, value / 12.92)
        y = linear @ _Y_ROW
        f = np.where(y > 0.008856, np.cbrt(np.maximum(y, 1e-12)), 7.787 * y + 16.0 / 116.0)
        out[top:top + step] = 116.0 * f - 16.0
    return out


class Prepared:
    """A photo ready for repeated colorization: its 224x224 L_n (the model's first
    input channel) and its full-resolution L (float32, 4 bytes per pixel: all it
    keeps of the photo), computed once."""

    def __init__(self, rgb: np.ndarray):
        rgb = np.asarray(rgb, np.uint8)
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise ValueError(f"Expected an (H, W, 3) uint8 image, got shape {rgb.shape}.")
        self.height, self.width = rgb.shape[:2]
        self.small_lightness = self._small_lightness(Image.fromarray(rgb))
        self.lightness = lightness_of(rgb)[..., None]  # (H, W, 1), no copy

    @classmethod
    def from_image(cls, image: Image.Image) -> "Prepared":
        """The same from a Pillow RGB image, read in row strips: no full-size
        array besides the lightness it keeps."""
        if image.mode != "RGB":
            raise ValueError(f"Expected an RGB image, got mode {image.mode}.")
        prepared = cls.__new__(cls)
        prepared.width, prepared.height = image.size
        prepared.small_lightness = cls._small_lightness(image)
        prepared.lightness = np.empty((prepared.height, prepared.width, 1), np.float32)
        step = max(1, _ROWS_PER_CHUNK // prepared.width)
        for top in range(0, prepared.height, step):
            bottom = min(top + step, prepared.height)
            strip = np.asarray(image.crop((0, top, prepared.width, bottom)))
            prepared.lightness[top:bottom, :, 0] = lightness_of(strip)
        return prepared

    @staticmethod
    def _small_lightness(image: Image.Image) -> np.ndarray:
        small = np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))
        return (lightness_of(small)[..., None] - L_CENT) / L_NORM

    @staticmethod
    def bytes_for(height: int, width: int) -> int:
        """What a Prepared photo of this size keeps in memory."""
        return 4 * height * width + 4 * IMAGE_SIZE * IMAGE_SIZE

    @property
    def nbytes(self) -> int:
        return self.lightness.nbytes + self.small_lightness.nbytes

    def model_input(self, hints) -> np.ndarray:
        """(224, 224, 4) network input for these hints [(y, x, colour)]."""
        return self.model_input_grid(hint_channels(hints, self.height, self.width))

    def model_input_grid(self, grid: np.ndarray) -> np.ndarray:
        """(224, 224, 4) network input for a hint grid (hint_grid)."""
        return np.concatenate([self.small_lightness, grid], axis=-1)

    def compose(self, ab_normalized: np.ndarray) -> np.ndarray:
        """(224, 224, 2) predicted ab / 110 -> (H, W, 3) uint8 at full resolution,
        in row chunks (bounded temporaries at any photo size)."""
        planes = [Image.fromarray(np.ascontiguousarray(ab_normalized[..., c] * AB_NORM,
                                                       np.float32), mode="F")
                  for c in range(2)]
        out = np.empty((self.height, self.width, 3), np.uint8)
        step = max(1, _ROWS_PER_CHUNK // max(self.width, 1))
        scale = IMAGE_SIZE / self.height
        for top in range(0, self.height, step):
            bottom = min(top + step, self.height)
            box = (0, top * scale, IMAGE_SIZE, bottom * scale)  # the same sample positions
            ab = np.stack([np.asarray(p.resize((self.width, bottom - top), Image.BILINEAR,
                                               box=box)) for p in planes], axis=-1)
            out[top:bottom] = lab_to_uint8(self.lightness[top:bottom], ab)
        return out


def model_input(rgb: np.ndarray, hints) -> np.ndarray:
    """(H, W, 3) uint8 photo + hints -> (224, 224, 4) network input."""
    return Prepared(rgb).model_input(hints)


_FORWARD = weakref.WeakKeyDictionary()  # model -> compiled forward


def forward(model, inputs) -> np.ndarray:
    """model(inputs) as one XLA-compiled call (the fastest on CPU, see
    tools/benchmark_icolorit.py); traced once per batch size."""
    if model not in _FORWARD:
        _FORWARD[model] = tf.function(lambda x: model(x), jit_compile=True,
                                      reduce_retracing=True)
    return np.asarray(_FORWARD[model](tf.convert_to_tensor(inputs, tf.float32)))


def colorize(model, rgb: np.ndarray, hints=()) -> np.ndarray:
    """(H, W, 3) uint8 (grayscale photos as R = G = B) -> (H, W, 3) uint8 colourised.

    hints: [(y, x, colour)], y/x in the photo's pixels, colour [r, g, b] or [a, b].
    """
    return colorize_batch(model, [rgb], [hints])[0]


def colorize_prepared(model, prepared: Prepared, hints=()) -> np.ndarray:
    """colorize() of a Prepared photo (no per-call colour conversion of the input)."""
    return prepared.compose(forward(model, prepared.model_input(hints)[None])[0])


def colorize_batch(model, images, hint_lists) -> list[np.ndarray]:
    """colorize() for several photos in one forward pass."""
    prepared = [Prepared(rgb) for rgb in images]
    inputs = np.stack([p.model_input(hints) for p, hints in zip(prepared, hint_lists)])
    return [p.compose(ab) for p, ab in zip(prepared, forward(model, inputs))]


def read_hints(path: str) -> list:
    """A hints JSON file -> [(y, x, colour)].

    Accepted: a list of {"y": .., "x": .., "rgb": [r, g, b]} or {"y", "x", "ab": [a, b]}
    objects, or of [y, x, colour] triples, optionally under a "hints" key.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise HintError(f"No hints file at {path}.") from None
    except json.JSONDecodeError as error:
        raise HintError(f"{path} is not valid JSON ({error}).") from None
    if isinstance(data, dict):
        data = data.get("hints")
    if not isinstance(data, list):
        raise HintError(f"{path}: expected a list of hints (or {{\"hints\": [...]}}).")
    hints = []
    for number, item in enumerate(data):
        if isinstance(item, dict):
            color = item.get("rgb", item.get("ab"))
            if "y" not in item or "x" not in item or color is None:
                raise HintError(f"{path}: hint {number} needs y, x and rgb or ab: {item}.")
            hints.append((item["y"], item["x"], color))
        elif isinstance(item, (list, tuple)) and len(item) == 3:
            hints.append(tuple(item))
        else:
            raise HintError(f"{path}: hint {number} is neither an object nor [y, x, colour]: "
                            f"{item!r}.")
    return hints
