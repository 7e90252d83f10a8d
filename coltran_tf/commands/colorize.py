"""Colorize a folder of photos with ColTran's three stages in one process.

  coltran-colorize --img_dir=photos --store_dir=out --checkpoints=released
  coltran-colorize --img_dir=photos --store_dir=out --checkpoints=coltran
  coltran-colorize --img_dir=data --store_dir=out     # the bundled demo weights

(`python -m coltran_tf.commands.colorize` is the same command.) --checkpoints=released
fetches the authors' released checkpoints once (about 0.85 GB), converts them
and caches them ($COLTRAN_TF_HOME, default ~/.keras/coltran_tf); an
http(s)://...zip or gs:// URL of an archive in the same layout (a mirror)
works the same way. Otherwise --checkpoints is a directory with colorizer/,
color_upsampler/ and spatial_upsampler/ (the unzipped release, or three
training logdirs / exported model directories of ours); --colorizer,
--color_upsampler and --spatial_upsampler point at one stage each instead.
With none of them, the bundled demo weights are used (coltran_tf/demo: small
models trained for minutes on data/'s colour photos; see their README for
what they can and cannot do).
Original checkpoints are converted and built from the paper presets unless
--<stage>_config names another config (a preset: tiny, paper, baseline, demo;
or FILE[:variant], e.g. configs/colorizer.py:baseline).

Grayscale and colour files of any size are accepted (colour ones are
recolorized from their luminance). Results: out/stage1, out/stage2, out/final
(the model's 64/64/256 px images), out/uncertainty (the colorizer's per-pixel
max probability, white = certain), out/fullres (the photo's own luminance at
its own size with the predicted colours), out/contact_sheet.png and
out/report.json. Re-running continues an interrupted run.
"""

import os
import sys

from absl import app, flags, logging

from coltran_tf.configs import STAGES
from coltran_tf.configs.sampler import HELP, NORM_CONTEXTS, SAMPLERS, SamplerOptions
from coltran_tf.utils import cli, precision

flags.DEFINE_string("img_dir", None, "Folder of photos (searched recursively).")
flags.DEFINE_string("store_dir", None, "Where the results go (created if needed).")
flags.DEFINE_string("checkpoints", None, "'demo' (the bundled demo weights), "
                    "'released' (the authors' checkpoints, fetched "
                    "once into the cache), an http(s):// or gs:// URL of a zip in the same "
                    "layout, or a directory holding colorizer/, color_upsampler/ and "
                    "spatial_upsampler/ (released checkpoints or ours); default: the bundled "
                    "demo weights when no stage flag is given either.")
for _stage in STAGES:
    flags.DEFINE_string(_stage, None, f"The {_stage} stage's model: a model directory, a "
                        "training logdir, an original checkpoint, released:"
                        f"{_stage} or demo:{_stage} (default: --checkpoints/{_stage}).")
    flags.DEFINE_string(f"{_stage}_config", None, f"Config of an original {_stage} "
                        "checkpoint: a preset (tiny, paper, baseline, demo) or "
                        f"FILE[:variant] (default: paper).")
flags.DEFINE_integer("num_samples", 1, "Colourings per image, written as NAME_s<k>.png.")
flags.DEFINE_integer("batch_size", 4, "Images colorized together (memory vs speed).")
flags.DEFINE_enum("mode", "sample", ["sample", "argmax"], "Colorizer: 'sample' draws diverse "
                  "colourings, 'argmax' takes the most likely colour pixel by pixel.")
flags.DEFINE_enum("upsampler_mode", "argmax", ["argmax", "sample"],
                  "Color and spatial upsamplers (the paper uses argmax).")
flags.DEFINE_integer("seed", 0, "Random seed: sample k of the n-th image (sorted paths) uses "
                     "seed + n * num_samples + k, so results do not depend on batching.")
_OPTIONS = SamplerOptions()
flags.DEFINE_enum("sampler", _OPTIONS.sampler, list(SAMPLERS), HELP["sampler"])
flags.DEFINE_enum("norm_context", _OPTIONS.norm_context, list(NORM_CONTEXTS),
                  HELP["norm_context"])
flags.DEFINE_float("temperature", _OPTIONS.temperature, HELP["temperature"])
flags.DEFINE_integer("top_k", _OPTIONS.top_k, HELP["top_k"])
flags.DEFINE_float("top_p", _OPTIONS.top_p, HELP["top_p"])
flags.DEFINE_enum("precision", "float32", list(precision.CHOICES), precision.HELP)
flags.DEFINE_bool("overwrite", False, "Recompute results that exist instead of resuming.")
flags.DEFINE_integer("sheet_rows", 32, "Images on contact_sheet.png (0 for none).")


def _stage_paths(values) -> dict:
    if values["checkpoints"] == "demo" or (
            not values["checkpoints"] and not any(values[stage] for stage in STAGES)):
        from coltran_tf.demo import DemoWeightsMissing, coltran_dir
        try:
            values = {**values, "checkpoints": coltran_dir()}
        except DemoWeightsMissing as error:
            raise app.UsageError(f"{error} (or pass --checkpoints=DIR).") from None
        print("Using the bundled demo weights (small models trained briefly on data/; pass "
              "--checkpoints=released for the paper's, see README).", flush=True)
    paths = {}
    for stage in STAGES:
        path = values[stage]
        if path is None and values["checkpoints"]:
            path = os.path.join(values["checkpoints"], stage)
        if path is None:
            raise app.UsageError(
                f"No model for the {stage} stage: pass --checkpoints=DIR (holding colorizer/, "
                f"color_upsampler/, spatial_upsampler/) or --{stage}=PATH.")
        paths[stage] = path
    return paths


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS.flag_values_dict()
    from coltran_tf.utils.cli import check_exists, check_writable

    check_exists(values["img_dir"], "--img_dir", "folder")
    check_writable(values["store_dir"], "--store_dir")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from coltran_tf.checkpoints.loading import StageError, load_model
    from coltran_tf.checkpoints.released import fetch_released, is_remote
    from coltran_tf.sampling.colorize_folder import ColorizeError, colorize_folder
    from coltran_tf.sampling.pipeline import Pipeline
    from coltran_tf.utils.download import FetchError

    report = lambda line: print(line, flush=True)  # noqa: E731
    try:
        if is_remote(values["checkpoints"]):
            values["checkpoints"] = fetch_released(
                values["checkpoints"], {s: values[f"{s}_config"] for s in STAGES}, report)
        models, sources = {}, {}
        for stage, path in _stage_paths(values).items():
            models[stage], _, sources[stage] = load_model(
                path, values[f"{stage}_config"], stage, report,
                precision=values["precision"])
        options = SamplerOptions.from_mapping(values)
        pipeline = Pipeline(*models.values(), options=options, sources=sources)
        summary = colorize_folder(
            pipeline, values["img_dir"], os.path.abspath(values["store_dir"]),
            num_samples=values["num_samples"], batch_size=values["batch_size"],
            mode=values["mode"], upsampler_mode=values["upsampler_mode"], seed=values["seed"],
            overwrite=values["overwrite"], sheet_rows=values["sheet_rows"], report=report)
    except (StageError, ColorizeError, FetchError, ValueError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted. Finished images are kept; run the same command again to "
              "continue.", file=sys.stderr)
        return 130
    return 1 if summary["skipped"] and not summary["colorized"] else 0


run = cli.entry_point(main, __name__, "coltran-colorize", required=["img_dir", "store_dir"])


if __name__ == "__main__":
    run()
