"""Seconds per photo of `coltran-colorize` with paper-size stages.

  python tools/benchmark_colorize.py                      # paper size, 2 photos of data/
  python tools/benchmark_colorize.py --variant=demo --photos=4

Builds the three stages from their presets with random weights of the
released checkpoints' shapes (the speed does not depend on the values), saves
them as model directories, and runs the colorize pipeline (colorizer with the
cached sampler, color upsampler, spatial upsampler, full-resolution chroma
transfer) exactly as the command does: once on one photo (tracing and
compilation included), then on --photos photos of data/, timed. Prints the
seconds per photo.
"""

import os
import shutil
import tempfile
import time

import _paths  # noqa: F401
from _timing import machine
from absl import app, flags


def _define_flags():
    """Only when run as a script: importing the module (tests) defines no flags."""
    flags.DEFINE_enum("variant", "paper", ["paper", "demo", "tiny"], "Stage sizes (presets).")
    flags.DEFINE_integer("photos", 2, "Photos of data/ colorized in the timed run.")
    flags.DEFINE_integer("batch_size", 1, "colorize --batch_size.")
    flags.DEFINE_enum("mode", "sample", ["sample", "argmax"], "colorize --mode.")
    flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "colorize --precision.")


PHOTOS = ("camera.png", "chelsea.png", "astronaut.png", "coffee.png", "rocket.jpg",
          "brick.png")


def _pipeline(variant: str, root: str, report, precision: str = "float32"):
    import keras

    from coltran_tf.checkpoints.loading import load_model
    from coltran_tf.checkpoints.native import save_model_dir
    from coltran_tf.configs import STAGES, get_preset
    from coltran_tf.models.builder import build_model
    from coltran_tf.sampling.colorize_folder import Pipeline

    keras.utils.set_random_seed(0)
    models, sources = [], {}
    for stage in STAGES:
        config = get_preset(stage, "" if variant == "paper" else variant)
        path = save_model_dir(build_model(config), config, os.path.join(root, stage))
        model, _, sources[stage] = load_model(path, stage=stage,  # as the command does
                                              precision=precision)
        models.append(model)
        report(f"{stage}: {model.count_params():,} parameters ({variant})")
    return Pipeline(*models, sources=sources)


def _colorize(pipeline, photos: list[str], root: str, name: str, batch_size: int,
              mode: str) -> float:
    from coltran_tf.sampling.colorize_folder import colorize_folder

    source = os.path.join(root, f"{name}_in")
    os.makedirs(source)
    for photo in photos:
        shutil.copy(os.path.join(_paths.REPO_ROOT, "data", photo), source)
    start = time.perf_counter()
    colorize_folder(pipeline, source, os.path.join(root, f"{name}_out"),
                    batch_size=batch_size, mode=mode, report=lambda line: None)
    return time.perf_counter() - start


def benchmark(variant: str = "paper", photos: int = 2, batch_size: int = 1,
              mode: str = "sample", report=print, precision: str = "float32") -> dict:
    """{"first": s, "per_photo": s, "photos": n}; prints the lines through report."""
    count = min(photos, len(PHOTOS))
    root = tempfile.mkdtemp(prefix="benchmark_colorize-")
    try:
        pipeline = _pipeline(variant, root, report, precision)
        first = _colorize(pipeline, [PHOTOS[-1]], root, "warmup", batch_size, mode)
        timed = _colorize(pipeline, list(PHOTOS[:count]), root, "timed", batch_size, mode)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(f"first photo (tracing and compilation included): {first:.1f} s")
    report(f"colorize, {variant} stages, {precision}, {machine()}, batch "
           f"{batch_size}, mode {mode}: {timed / count:.1f} s per photo ({count} photos in "
           f"{timed:.1f} s)")
    return {"first": first, "per_photo": timed / count, "photos": count}


def main(argv):
    del argv
    f = flags.FLAGS
    benchmark(f.variant, f.photos, f.batch_size, f.mode,
              report=lambda line: print(line, flush=True), precision=f.precision)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
