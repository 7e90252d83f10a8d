"""Colorize a photo with iColoriT from a file of point hints.

  icolorit-colorize --image=photo.jpg --hints=hints.json --output=photo_color.png
  icolorit-colorize --image=photo.jpg --weights=icolorit_tiny.npz   # official weights

(`python -m coltran_tf.commands.icolorit_colorize` is the same command.)

--hints: JSON, a list of {"y": row, "x": column, "rgb": [r, g, b]} (or
"ab": [a, b]) in the photo's own pixels; no --hints = automatic colorization.
--weights: `demo` (the default: the bundled demo iColoriT-T), an official
state_dict as .npz (converted from the released .pth, see README) or .pth
(needs PyTorch), an http(s):// or gs:// URL of either (fetched and converted
once into the cache), or a model directory written by our training. The model
runs at 224x224; the result has the photo's size and its original luminance.
"""

import os
import sys

from absl import app, flags

from coltran_tf.utils import cli, precision

flags.DEFINE_string("image", None, "The photo (any size; colour photos are recolorized).")
flags.DEFINE_string("hints", None, "JSON file of hints; omit for automatic colorization.")
flags.DEFINE_string("weights", "demo", "iColoriT weights: demo (the bundled ones), a .npz / "
                    ".pth state_dict, a URL of one, or our model dir.")
flags.DEFINE_string("output", None, "Where to write the PNG (default: <image>_icolorit.png).")
flags.DEFINE_enum("precision", "float32", list(precision.CHOICES), precision.HELP)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from coltran_tf.utils.cli import check_writable

    flags_ = flags.FLAGS
    if not flags_.image:
        raise app.UsageError("--image is required.")
    if not os.path.isfile(flags_.image):
        raise app.UsageError(f"--image={flags_.image}: no such file.")
    if flags_.hints and not os.path.isfile(flags_.hints):
        raise app.UsageError(f"--hints={flags_.hints}: no such file.")
    output = flags_.output or os.path.splitext(flags_.image)[0] + "_icolorit.png"
    check_writable(output, "--output")

    from coltran_tf.data.decode import read_image
    from coltran_tf.icolorit.convert import WeightsError, load_icolorit
    from coltran_tf.icolorit.inference import HintError, colorize, read_hints
    from coltran_tf.utils.images import save_png

    try:
        rgb = read_image(flags_.image)
    except (OSError, ValueError) as error:
        print(f"Error: cannot read --image={flags_.image}: {error}", file=sys.stderr)
        return 2
    try:
        hints = read_hints(flags_.hints) if flags_.hints else []
        model = load_icolorit(flags_.weights, precision=flags_.precision)
        result = colorize(model, rgb, hints)
    except (HintError, WeightsError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    save_png(result, output)
    print(f"{output}: {result.shape[1]}x{result.shape[0]}, {len(hints)} hints")
    return 0


run = cli.entry_point(main, __name__, "icolorit-colorize")


if __name__ == "__main__":
    run()
