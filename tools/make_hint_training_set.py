"""Training images for the bundled demo iColoriT in which colour is not a
function of grey level, so that only the hints tell it: the model has to learn
to follow them (with data/'s photos alone it memorises their colours instead).

  python tools/make_hint_training_set.py --out=runs/demo/icolorit_data

Writes --count JPEGs of --size px, drawn with --seed, of three kinds:
* `photo`: a random crop of one of the colour photos of data/ as it is (keeps
  the automatic colouring's sense of real colours);
* `recolour`: such a crop with its chroma changed per luminance band: the
  photo's luma split at 1-3 random quantiles, each band's (Cb, Cr) rotated by
  a random angle, scaled and shifted (luma kept), so that a band's colour is
  known from a hint in it and from nothing else;
* `scene`: a gradient background under 3-9 random shapes (ellipses,
  rectangles, polygons, strokes) of random colours, with mild texture.

The photos listed in --held_out are never used: the hint measurement
(tools/icolorit_hint_response.py) runs on them.
"""

import os
import random
import sys

import _paths  # noqa: F401
import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw, ImageFilter

flags.DEFINE_string("out", "runs/demo/icolorit_data", "Folder the images are written to.")
flags.DEFINE_integer("count", 3000, "Images to write.")
flags.DEFINE_integer("size", 256, "Side of each (square) image.")
flags.DEFINE_integer("seed", 0, "Seed of every random choice.")
flags.DEFINE_list("held_out", ["china.jpg", "rocket.jpg"],
                  "Photos of data/ kept out of training (the measurement's).")
flags.DEFINE_list("shares", ["0.2", "0.4", "0.4"], "Shares of photo, recolour and scene.")


def _colour_photos(held_out) -> list[Image.Image]:
    from coltran_tf.data import decode, sources

    root = sources.BUNDLED_DIR
    photos = []
    for name in decode.find_images(root)[0]:
        if os.path.basename(name) in held_out:
            continue
        rgb = decode.read_image(os.path.join(root, name))
        if not decode.is_grayscale(rgb):
            photos.append(Image.fromarray(rgb))
    if not photos:
        raise SystemExit(f"No colour photos under {root}.")
    return photos


def _crop(photo: Image.Image, size: int, rng: random.Random) -> Image.Image:
    width, height = photo.size
    side = int(min(width, height) * rng.uniform(0.35, 1.0))
    left, top = rng.randint(0, width - side), rng.randint(0, height - side)
    crop = photo.crop((left, top, left + side, top + side)).resize((size, size),
                                                                   Image.BICUBIC)
    return crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def _recolour(image: Image.Image, rng: random.Random) -> Image.Image:
    ycc = np.asarray(image.convert("YCbCr"), np.float32)
    luma = ycc[..., 0]
    cuts = sorted(rng.uniform(0.15, 0.85) for _ in range(rng.randint(1, 3)))
    bands = np.digitize(luma, np.quantile(luma, cuts)).astype(np.uint8)
    bands = np.asarray(Image.fromarray(bands).filter(ImageFilter.ModeFilter(7)))
    chroma = ycc[..., 1:] - 128.0
    out = chroma.copy()
    for band in range(len(cuts) + 1):
        angle = rng.uniform(0, 2 * np.pi)
        scale = rng.uniform(0.5, 1.6)
        shift = np.array([rng.uniform(-45, 45), rng.uniform(-45, 45)], np.float32)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]],
                            np.float32)
        where = bands == band
        out[where] = chroma[where] @ rotation.T * scale + shift
    ycc[..., 1:] = np.clip(out + 128.0, 0, 255)
    return Image.fromarray(ycc.astype(np.uint8), "YCbCr").convert("RGB")


def _random_colour(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(0, 255) for _ in range(3))


def _scene(size: int, rng: random.Random) -> Image.Image:
    top, bottom = np.array(_random_colour(rng)), np.array(_random_colour(rng))
    ramp = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    background = (top * (1 - ramp) + bottom * ramp) * np.ones((1, size, 1))
    image = Image.fromarray(background.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 9)):
        colour = _random_colour(rng)
        x0, y0 = rng.randint(-size // 4, size), rng.randint(-size // 4, size)
        w, h = rng.randint(size // 10, size // 2), rng.randint(size // 10, size // 2)
        kind = rng.choice(["ellipse", "rectangle", "polygon", "line"])
        if kind == "ellipse":
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == "rectangle":
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == "polygon":
            points = [(x0 + rng.randint(0, w), y0 + rng.randint(0, h)) for _ in range(5)]
            draw.polygon(points, fill=colour)
        else:
            draw.line((x0, y0, x0 + w, y0 + h), fill=colour, width=rng.randint(4, 16))
    texture = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 5, (size, size, 1))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5))),
                        np.float32) + texture
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def main(argv):
    del argv
    f = flags.FLAGS
    rng = random.Random(f.seed)
    photos = _colour_photos(set(f.held_out))
    shares = np.cumsum([float(s) for s in f.shares])
    os.makedirs(f.out, exist_ok=True)
    counts = {"photo": 0, "recolour": 0, "scene": 0}
    for index in range(f.count):
        draw = rng.random() * shares[-1]
        if draw < shares[0]:
            kind, image = "photo", _crop(rng.choice(photos), f.size, rng)
        elif draw < shares[1]:
            kind, image = "recolour", _recolour(_crop(rng.choice(photos), f.size, rng), rng)
        else:
            kind, image = "scene", _scene(f.size, rng)
        image.save(os.path.join(f.out, f"{index:05d}_{kind}.jpg"), quality=92)
        counts[kind] += 1
        if (index + 1) % 500 == 0 or index + 1 == f.count:
            print(f"{index + 1}/{f.count} images written to {f.out}", flush=True)
    print(f"{counts['photo']} photos, {counts['recolour']} recoloured, {counts['scene']} "
          f"scenes from {len(photos)} colour photos (held out: {', '.join(f.held_out)}).")


if __name__ == "__main__":
    sys.exit(app.run(main))
