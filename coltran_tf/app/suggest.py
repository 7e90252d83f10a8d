"""ColTran's suggestions for the browser tool.

For an uploaded photo, the colorizer samples a few automatic colourings (the
color upsampler, when given, turns their coarse 3-bit colours into 8-bit
ones) and each becomes a starting point for the interactive model: a set of
hints placed where that colouring is most certain, one per cell of a grid
over the photo. The colourings' per-pixel distributions, averaged, estimate
the colorizer's marginal distribution of each pixel's colour given the
grayscale photo, p(x_ij | g) = E[p(x_ij | x_<ij, g)]; its most likely colours
at a clicked pixel are offered as swatches at that pixel's own lightness.
"""

import os
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from coltran_tf.configs import stages
from coltran_tf.icolorit.color import fit_chroma, lab_to_uint8, rgb_to_lab
from coltran_tf.sampling.pipeline import Pipeline, PipelineError
from coltran_tf.utils import image_ops

TOP_SYMBOLS = 16  # per-pixel candidates kept from the averaged distribution
MAX_SUGGESTIONS = 8


@dataclass
class Suggestions:
    """ColTran's colourings of one photo."""
    colors: np.ndarray        # (K, R, R, 3) uint8: the colourings at the colorizer's resolution
    certainty: np.ndarray     # (K, R, R): per-pixel max probability of each colouring
    top_symbols: np.ndarray   # (R, R, TOP_SYMBOLS) int: most likely coarse colours, best first
    top_probs: np.ndarray     # (R, R, TOP_SYMBOLS): their averaged probabilities
    seed: int


class ColTranSuggester:
    """ColTran's pipeline (the colorizer, optionally the color upsampler) behind
    the suggestions."""

    def __init__(self, colorizer, color_upsampler=None, name: str = "ColTran"):
        try:
            self.pipeline = Pipeline(colorizer, color_upsampler)
            if stages.get(self.pipeline.names[0]).takes is not None:
                raise PipelineError("Its first stage needs another stage's output.")
        except PipelineError as error:
            raise ValueError(f"{error} The suggestions need stages trained together.") from None
        self.name = name
        self.lock = threading.Lock()  # one sampling at a time (memory, compiled-function cache)

    @property
    def resolution(self) -> int:
        return self.pipeline.low

    @property
    def input_side(self) -> int:
        """The side photos are squeezed to first (as colorize does): the images the
        colorizer's inputs were downsampled from."""
        return self.pipeline.high

    def sample(self, rgb: np.ndarray, count: int, seed: int) -> Suggestions:
        """`count` colourings of an (H, W, 3) uint8 photo, sample k drawn with seed + k
        (so a colouring does not depend on how many are asked for)."""
        batch = self.pipeline.prepare(np.repeat(rgb[None], count, axis=0))
        runs = len(self.pipeline.names)  # the colorizer samples, an upsampler takes the argmax
        with self.lock:
            outputs = self.pipeline.chain(batch, ["sample"] + ["argmax"] * (runs - 1),
                                          [seed + np.arange(count)] + [seed] * (runs - 1))
        sampled, colors = outputs[0], outputs[-1]["images"]
        mean = np.asarray(sampled["proba"], np.float32).mean(axis=0)  # (R, R, 512)
        top = np.argsort(-mean, axis=-1)[..., :TOP_SYMBOLS]
        return Suggestions(colors=colors, certainty=np.asarray(sampled["uncertainty"]),
                           top_symbols=top, top_probs=np.take_along_axis(mean, top, -1),
                           seed=seed)


def load_suggester(coltran_dir: str, precision: str | None = None,
                   name: str | None = None) -> ColTranSuggester:
    """A suggester from a directory holding colorizer/ and (optionally)
    color_upsampler/: released checkpoints, training logdirs or model
    directories, as `colorize --checkpoints` takes them. `name`: what the page
    calls it (default: the directory)."""
    from coltran_tf.checkpoints.loading import StageError, load_model

    if not os.path.isdir(coltran_dir):
        raise StageError(f"--coltran_dir={coltran_dir!r} is not a directory; point it at one "
                         "holding colorizer/ (and color_upsampler/), as for colorize "
                         "--checkpoints.")
    colorizer_path = os.path.join(coltran_dir, "colorizer")
    if not os.path.exists(colorizer_path):
        raise StageError(f"--coltran_dir={coltran_dir!r} has no colorizer/; the suggestions "
                         "need at least the colorizer stage there.")
    colorizer = load_model(colorizer_path, stage="colorizer", precision=precision)[0]
    upsampler_path = os.path.join(coltran_dir, "color_upsampler")
    upsampler = (load_model(upsampler_path, stage="color_upsampler", precision=precision)[0]
                 if os.path.exists(upsampler_path) else None)
    return ColTranSuggester(colorizer, upsampler, name=name or coltran_dir)


# -- turning colourings into what the page shows -------------------------------------

def _cell_index(position: float, size: int, low: int) -> int:
    return min(low - 1, max(0, int(position * low / size)))


def starting_hints(suggestions: Suggestions, k: int, lightness: np.ndarray,
                   count: int = 24) -> list[dict]:
    """Hints for colouring k: a grid of about `count` cells over the photo (its
    aspect ratio kept), in each the colouring's most certain pixel, with that
    pixel's chroma (Lab ab) at the photo's own lightness there (hue kept,
    chroma reduced where sRGB cannot show it).

    Args:
      lightness: (H, W, 1) Lab L of the photo.

    Returns:
      [{"y", "x", "rgb"}] in the photo's pixels.
    """
    height, width = lightness.shape[:2]
    low = suggestions.colors.shape[1]
    rows = max(1, min(low, round(np.sqrt(count * height / width))))
    cols = max(1, min(low, round(count / rows)))
    edges_y = np.linspace(0, low, rows + 1).round().astype(int)
    edges_x = np.linspace(0, low, cols + 1).round().astype(int)
    ab = np.asarray(rgb_to_lab(suggestions.colors[k] / 255.0))[..., 1:]
    certainty = suggestions.certainty[k]
    hints = []
    for y0, y1 in zip(edges_y[:-1], edges_y[1:]):
        for x0, x1 in zip(edges_x[:-1], edges_x[1:]):
            cell = certainty[y0:y1, x0:x1]
            i, j = np.unravel_index(np.argmax(cell), cell.shape)
            i, j = y0 + i, x0 + j
            y = min(height - 1, int((i + 0.5) * height / low))
            x = min(width - 1, int((j + 0.5) * width / low))
            rgb = lab_to_uint8(lightness[y, x], fit_chroma(lightness[y, x], ab[i, j]))
            hints.append({"y": y, "x": x, "rgb": [int(v) for v in rgb]})
    return hints


def likely_colors(suggestions: Suggestions, y: int, x: int, lightness: np.ndarray,
                  count: int = 6) -> list[dict]:
    """The colorizer's most likely colours at photo pixel (y, x), shown at the
    pixel's lightness (hue kept, chroma reduced where sRGB cannot show it):
    [{"rgb", "probability"}], most likely first. Coarse colours that look the
    same at this lightness are merged (their probabilities added)."""
    height, width = lightness.shape[:2]
    low = suggestions.top_symbols.shape[0]
    i, j = _cell_index(y, height, low), _cell_index(x, width, low)
    symbols, probs = suggestions.top_symbols[i, j], suggestions.top_probs[i, j]
    coarse = np.asarray(image_ops.coarse_symbols_to_rgb(symbols), np.float32) + 16.0  # bin centres
    ab = np.asarray(rgb_to_lab(coarse / 255.0))[..., 1:]
    pixel = np.repeat(lightness[y, x][None], len(symbols), axis=0)
    rgbs = lab_to_uint8(pixel, fit_chroma(pixel, ab))
    merged = {}
    for rgb, probability in zip(map(tuple, rgbs.tolist()), probs.tolist()):
        merged[rgb] = merged.get(rgb, 0.0) + probability
    ranked = sorted(merged.items(), key=lambda item: -item[1])[:count]
    return [{"rgb": list(rgb), "probability": round(p, 4)} for rgb, p in ranked]


def thumbnail(image: Image.Image, max_side: int = 320) -> np.ndarray:
    """A Pillow image scaled down to at most max_side pixels (aspect kept)."""
    width, height = image.size
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(image.resize(size, Image.BILINEAR))


def area_square(image: Image.Image, side: int, strip_pixels: int = 1 << 20) -> np.ndarray:
    """A Pillow RGB image squeezed to (side, side, 3) uint8 by area resizing, as
    colorize squeezes photos (preprocess.resize_area), in strips: area resizing
    is separable, so the longer axis is reduced first strip by strip and no
    full-size float copy of the photo exists."""
    import tensorflow as tf

    width, height = image.size
    parts = []
    if width >= height:  # rows of full width -> (rows, side)
        step = max(1, strip_pixels // width)
        for top in range(0, height, step):
            rows = np.asarray(image.crop((0, top, width, min(height, top + step))), np.float32)
            parts.append(tf.image.resize(rows[None], [rows.shape[0], side], "area")[0])
        middle = tf.concat(parts, axis=0)
    else:  # columns of full height -> (side, columns)
        step = max(1, strip_pixels // height)
        for left in range(0, width, step):
            cols = np.asarray(image.crop((left, 0, min(width, left + step), height)), np.float32)
            parts.append(tf.image.resize(cols[None], [side, cols.shape[1]], "area")[0])
        middle = tf.concat(parts, axis=1)
    square = tf.image.resize(middle[None], [side, side], "area")[0]
    return np.asarray(tf.clip_by_value(tf.round(square), 0, 255), np.uint8)
