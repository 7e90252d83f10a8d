"""How much an iColoriT model follows hints: PSNR against the number of hints on
held-out photos, and the response to one saturated hint.

  python tools/icolorit_hint_response.py                      # the bundled demo
  python tools/icolorit_hint_response.py --weights=runs/demo/icolorit/model --draws=16

PSNR (the paper's protocol, Yun et al. 2023, Sec. 4.1): each photo squeezed
to 224x224, N hints at random 2x2 cells with the ground truth's colour, the
prediction's RGB against the ground truth's; the mean over --draws random
hint sets per photo and over the photos. Defaults: the colour photos of data/
that the demo's training set holds out (tools/make_hint_training_set.py).

Single hint: one pure red hint ([255, 0, 0]) at the centre of each photo;
the mean change of R - G over the 17x17 pixels around it, and the share of
the photo's pixels whose RGB moved by more than 30 (of 765, summed).

Without hints: the colourfulness (Hasler and Suesstrunk, RGB in 0..255) of
the colourings of data/'s grayscale photos at their own size, each and their
mean; --sheet also writes them side by side.
"""

import os

import _paths  # noqa: F401
import numpy as np
from absl import app, flags

flags.DEFINE_string("weights", "demo", "iColoriT weights (demo, a model dir, an .npz, ...).")
flags.DEFINE_list("photos", ["china.jpg", "rocket.jpg"],
                  "Photos: paths, or names of data/'s photos.")
flags.DEFINE_list("counts", ["0", "1", "10", "100"], "Hint counts.")
flags.DEFINE_integer("draws", 8, "Random hint sets per photo and count.")
flags.DEFINE_integer("seed", 0, "Seed of the hint sets.")
flags.DEFINE_string("sheet", None, "Also write the hint-free colourings of data/'s grayscale "
                    "photos here, side by side.")
flags.DEFINE_string("example", None, "Also write the README's example here: data/astronaut.png "
                    "colourised without hints and with README_HINTS, side by side, the "
                    "hints marked.")

# The README's iColoriT example (its hints.json).
README_HINTS = [{"y": 340, "x": 110, "rgb": [40, 90, 220]},  # the suit: blue
                {"y": 130, "x": 440, "rgb": [60, 170, 80]}]  # the wall: green

def _path(name: str) -> str:
    from coltran_tf.data.sources import BUNDLED_DIR

    return name if os.path.exists(name) else os.path.join(BUNDLED_DIR, name)


def single_hint(model, rgb: np.ndarray) -> tuple[float, float]:
    """(mean change of R - G in the 17x17 pixels around a red hint at the centre,
    share of pixels whose summed |RGB change| exceeds 30)."""
    from coltran_tf.icolorit.inference import colorize

    y, x = rgb.shape[0] // 2, rgb.shape[1] // 2
    plain = colorize(model, rgb).astype(np.int32)
    hinted = colorize(model, rgb, [(y, x, [255, 0, 0])]).astype(np.int32)
    window = (slice(y - 8, y + 9), slice(x - 8, x + 9))
    redness = lambda image: (image[..., 0] - image[..., 1])[window].mean()  # noqa: E731
    moved = np.abs(hinted - plain).sum(-1) > 30
    return float(redness(hinted) - redness(plain)), float(moved.mean())


def hint_free_colourfulness(model, sheet: str | None = None) -> dict[str, float]:
    """{name: colourfulness} of the hint-free colourings of data/'s grayscale
    photos (at their own size); `sheet` gets them side by side."""
    from PIL import Image

    from coltran_tf.data.decode import find_images, is_grayscale, read_image
    from coltran_tf.data.sources import BUNDLED_DIR
    from coltran_tf.icolorit.inference import colorize
    from coltran_tf.utils import metrics

    scores, tiles = {}, []
    for name in find_images(BUNDLED_DIR)[0]:
        rgb = read_image(os.path.join(BUNDLED_DIR, name))
        if not is_grayscale(rgb):
            continue
        colouring = colorize(model, rgb)
        metric = metrics.create("colorfulness", scale=255.0)
        metric.update(colouring / 255.0)
        scores[name] = float(metric.result())
        tiles.append(Image.fromarray(colouring).resize((160, 160), Image.BILINEAR))
    if sheet:
        contact = Image.new("RGB", (160 * len(tiles), 160))
        for i, tile in enumerate(tiles):
            contact.paste(tile, (160 * i, 0))
        contact.save(sheet)
    return scores


def write_example(model, path: str) -> None:
    from PIL import Image, ImageDraw

    from coltran_tf.data.decode import read_image
    from coltran_tf.icolorit.inference import colorize

    rgb = read_image(_path("astronaut.png"))
    hints = [(h["y"], h["x"], h["rgb"]) for h in README_HINTS]
    plain, hinted = colorize(model, rgb), colorize(model, rgb, hints)
    gray = np.repeat(rgb.mean(-1, keepdims=True), 3, -1).astype(np.uint8)
    panels = [Image.fromarray(a) for a in (gray, plain, hinted)]
    draw = ImageDraw.Draw(panels[2])
    for y, x, colour in hints:
        draw.ellipse((x - 9, y - 9, x + 9, y + 9), fill=tuple(colour), outline=(255, 255, 255),
                     width=3)
    side = 256
    sheet = Image.new("RGB", (3 * side, side), (255, 255, 255))
    for i, panel in enumerate(panels):
        sheet.paste(panel.resize((side, side), Image.BILINEAR), (i * side, 0))
    sheet.save(path, quality=88)
    print(f"wrote {path}: grey input, no hints, the README's two hints")


def main(argv):
    del argv
    from coltran_tf.data.decode import read_image
    from coltran_tf.icolorit.convert import load_icolorit
    from coltran_tf.icolorit.evaluation import load_ground_truth, psnr_by_hint_count

    f = flags.FLAGS
    model = load_icolorit(f.weights, report=lambda line: None)
    paths = [_path(p) for p in f.photos]
    truths = np.stack([load_ground_truth(p) for p in paths])
    counts = [int(c) for c in f.counts]
    scores = psnr_by_hint_count(model, truths, counts, f.draws, f.seed)
    print(f"weights {f.weights}; {len(paths)} photos ({', '.join(f.photos)}), "
          f"{f.draws} hint sets each")
    print("hints  PSNR (dB)  gain over 0 hints")
    for count in counts:
        print(f"{count:5d}  {scores[count]:9.2f}  {scores[count] - scores[counts[0]]:+8.2f}")
    print("one red hint at the centre: R-G change in the 17x17 around it, pixels moved > 30")
    for name, path in zip(f.photos, paths):
        shift, moved = single_hint(model, read_image(path))
        print(f"  {name}: {shift:+.1f}, {100 * moved:.1f}% of the photo")
    scores = hint_free_colourfulness(model, f.sheet)
    print(f"no hints, data/'s grayscale photos: colourfulness {np.mean(list(scores.values())):.1f}"
          " (" + ", ".join(f"{name} {value:.1f}" for name, value in scores.items()) + ")")
    if f.sheet:
        print(f"wrote {f.sheet}")
    if f.example:
        write_example(model, f.example)


if __name__ == "__main__":
    import sys

    from coltran_tf.utils import cli

    cli.quiet_start(sys.argv)
    app.run(main)
