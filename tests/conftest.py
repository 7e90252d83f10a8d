import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO_ROOT), "shared")
REFERENCE_FIXTURES = os.path.join(SHARED, "fixtures", "reference")
MODEL_NAMES = ("coltran_core", "color_upsampler", "spatial_upsampler")


class Interrupted(Exception):
    """Raised by `interrupt_after` to simulate a job killed mid-run."""


def interrupt_after(count: int):
    """A report callback that stops a job at its progress line '<count>/...'."""
    def report(line):
        if line.startswith(f"{count}/"):
            raise Interrupted(line)
    return report


def require_fixtures(*parts):
    """Path under ../shared/fixtures/reference, or skip with the reason."""
    path = os.path.join(REFERENCE_FIXTURES, *parts)
    if not os.path.exists(path):
        pytest.skip(f"oracle fixtures not found at {path} (they live in ../shared beside "
                    "the checkout; CI provides them)")
    return path


def write_tiny_coltran(root) -> str:
    """Tiny, untrained colorizer/ and color_upsampler/ model directories under root
    (what the browser tool's --coltran_dir points at); returns root."""
    import keras

    from configs import color_upsampler, colorizer
    from coltran_tf.checkpoints.native import save_model_dir
    from coltran_tf.models.builder import build_model

    keras.utils.set_random_seed(3)
    for name, module in (("colorizer", colorizer), ("color_upsampler", color_upsampler)):
        config = module.get_config("tiny")
        save_model_dir(build_model(config), config, os.path.join(str(root), name))
    return str(root)
