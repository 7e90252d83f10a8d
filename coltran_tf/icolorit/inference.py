"""Colorize one photo of any size from point hints in its own coordinates.

The model sees the photo squeezed to 224x224 (spec §2: resize ignoring the
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


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float (H, W, C) -> (height, width, C), bilinear (PIL, per channel)."""
    channels = [np.asarray(Image.fromarray(array[..., c].astype(np.float32), mode="F")
                           .resize((width, height), Image.BILINEAR))
                for c in range(array.shape[-1])]
    return np.stack(channels, axis=-1)


def hint_ab(color) -> np.ndarray:
    """A hint colour -> its (a, b): 3 values are sRGB 0..255, 2 values are (a, b)."""
    color = np.asarray(color, np.float32).reshape(-1)
    if color.size == 2:
        return color
    if color.size == 3:
        if color.min() < 0 or color.max() > 255:
            raise HintError(f"RGB hint colour {color.tolist()} must be in 0..255.")
        return np.asarray(rgb_to_lab(color / 255.0))[1:]
    raise HintError(f"A hint colour is [r, g, b] (0..255) or [a, b], got {color.tolist()}.")


def hint_channels(hints, height: int, width: int) -> np.ndarray:
    """Hints [(y, x, colour), ...] in original (height, width) pixels ->
    (224, 224, 3) [a_hint/110, b_hint/110, mask] on the 2x2 cell grid.

    A hint lands in the cell that holds its pixel after the squeeze to 224; a
    later hint in the same cell replaces an earlier one.
    """
    channels = np.zeros((CELLS, CELLS, 3), np.float32)
    for number, hint in enumerate(hints):
        try:
            y, x, color = hint
        except (TypeError, ValueError):
            raise HintError(f"Hint {number}: expected (y, x, colour), got {hint!r}.") from None
        if not (0 <= y < height and 0 <= x < width):
            raise HintError(f"Hint {number} at (y={y}, x={x}) is outside the "
                            f"{width}x{height} image.")
        row = int(y * IMAGE_SIZE / height) // HINT_SIZE
        col = int(x * IMAGE_SIZE / width) // HINT_SIZE
        channels[row, col] = [*(hint_ab(color) / AB_NORM), 1.0]
    return np.repeat(np.repeat(channels, HINT_SIZE, axis=0), HINT_SIZE, axis=1)


class Prepared:
    """A photo ready for repeated colorization: its 224x224 L_n (the model's first
    input channel) and its full-resolution L, computed once."""

    def __init__(self, rgb: np.ndarray):
        rgb = np.asarray(rgb, np.uint8)
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise ValueError(f"Expected an (H, W, 3) uint8 image, got shape {rgb.shape}.")
        self.height, self.width = rgb.shape[:2]
        small = np.asarray(Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE),
                                                       Image.BILINEAR))
        self.small_lightness = (np.asarray(rgb_to_lab(small / 255.0))[..., :1] - L_CENT) / L_NORM
        self.lightness = np.asarray(rgb_to_lab(rgb / 255.0))[..., :1]

    def model_input(self, hints) -> np.ndarray:
        """(224, 224, 4) network input for these hints."""
        return np.concatenate([self.small_lightness,
                               hint_channels(hints, self.height, self.width)], axis=-1)

    def compose(self, ab_normalized: np.ndarray) -> np.ndarray:
        """(224, 224, 2) predicted ab / 110 -> (H, W, 3) uint8 at full resolution."""
        return lab_to_uint8(self.lightness,
                            _resize(ab_normalized * AB_NORM, self.height, self.width))


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
