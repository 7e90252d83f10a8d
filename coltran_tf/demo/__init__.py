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


DEMO = "demo"
MODELS = (*COLTRAN_STAGES, "icolorit")


def is_demo(spec: str | None) -> bool:
    """True for 'demo' and 'demo:MODEL'."""
    return bool(spec) and (spec == DEMO or spec.startswith(DEMO + ":"))


def resolve(spec: str | None, stage: str | None = None) -> str | None:
    """'demo:MODEL' (MODEL one of MODELS) or 'demo' (with `stage` known: the
    command's stage) -> that bundled model's directory; any other spec unchanged.
    ValueError naming the choices for an unknown MODEL."""
    if not is_demo(spec):
        return spec
    name = spec[len(DEMO) + 1:] if ":" in spec else stage
    if name is None:
        raise ValueError(f"{spec!r} does not say which demo model: use demo:MODEL, MODEL "
                         f"one of {', '.join(MODELS)}.")
    if name not in MODELS:
        raise ValueError(f"{spec!r}: no such demo model; choose one of "
                         f"{', '.join(DEMO + ':' + m for m in MODELS)}.")
    if stage is not None and name != stage:
        raise ValueError(f"{spec!r} is the demo {name}, but this needs a {stage}; use "
                         f"demo:{stage}.")
    return icolorit_dir() if name == "icolorit" else _require(os.path.join(DEMO_DIR, name))
