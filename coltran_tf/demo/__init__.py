"""The bundled demo weights: small ColTran stages and iColoriT-T trained for
minutes on the colour photographs of data/ (see README.md in this folder for
what they can and cannot do, and tools/train_demo_weights.sh to reproduce them).

  colorizer/, color_upsampler/, spatial_upsampler/   model directories (colorize --checkpoints)
  icolorit/                                          iColoriT-T (float16 weights)
"""

import os

from coltran_tf.configs import STAGES as COLTRAN_STAGES

DEMO_DIR = os.path.dirname(os.path.abspath(__file__))


class DemoWeightsMissing(FileNotFoundError):
    """The demo weights are not in this installation."""


def _require(path: str) -> str:
    if not os.path.exists(os.path.join(path, "config.json")):
        raise DemoWeightsMissing(
            f"The demo weights are missing ({path} has no config.json). They come with a "
            "checkout of the repository; recreate them with `bash "
            "tools/train_demo_weights.sh`, or pass your own weights.")
    return path


def coltran_dir() -> str:
    """The directory holding the three demo ColTran stages (as --checkpoints takes it)."""
    for stage in COLTRAN_STAGES:
        _require(os.path.join(DEMO_DIR, stage))
    return DEMO_DIR


def icolorit_dir() -> str:
    """The demo iColoriT-T model directory (as --icolorit_weights takes it)."""
    return _require(os.path.join(DEMO_DIR, "icolorit"))
