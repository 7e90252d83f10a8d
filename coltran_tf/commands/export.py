"""Export a model for serving (the `coltran-export` command).

  coltran-export --model=icolorit_tiny.npz --format=savedmodel --output=icolorit_sm
  coltran-export --model=coltran_tf/demo/icolorit --format=tflite --output=icolorit.tflite
  coltran-export --model=released:spatial_upsampler --format=onnx --output=spatial.onnx
  coltran-export --model=coltran_tf/demo/colorizer --output=colorizer_savedmodel

(`python -m coltran_tf.commands.export` is the same command.)

--model takes what the loaders take: an iColoriT weights file, URL or model
directory, or a ColTran stage (a model directory, a training logdir, an
original checkpoint, released[:STAGE]). The colorizer's artefact is its cached
sampler: SavedModel and ONNX (LiteRT's converter fails on its loop; the error
says how). Each export is loaded back with its own runtime
(tf.saved_model.load, the LiteRT interpreter, onnxruntime), run on a fixed
input and compared with the Keras model: the maximum absolute difference and
the argmax agreement (or share of equal values) are printed, and a mismatch
beyond tolerance is an error (nothing is left at --output). The
artefacts' signatures are documented in coltran_tf/serving/deploy.py and the README
("Deploy"). LiteRT and ONNX need the extra: pip install 'coltran_tf[export]'.
"""

import sys

from absl import app, flags

from coltran_tf.utils import cli, precision

flags.DEFINE_string("model", None, "The model to export (see above).")
flags.DEFINE_enum("format", "savedmodel", ["savedmodel", "tflite", "onnx"],
                  "Artefact format (serving/deploy.py's FORMATS).")
flags.DEFINE_string("output", None, "Where the artefact goes (a directory for savedmodel, "
                    "a file for tflite and onnx).")
flags.DEFINE_enum("kind", "auto", ["auto", "icolorit", "coltran"], "What --model is "
                  "(auto: a directory or file iColoriT's loader takes is iColoriT).")
flags.DEFINE_integer("resolution", 0, "iColoriT: the input side in pixels (0 = the model's "
                     "own, 224 for the released weights).")
flags.DEFINE_enum("precision", "float32", list(precision.CHOICES), precision.HELP)
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.mark_flags_as_required(["model", "output"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from coltran_tf.serving import deploy, load_module

    f = flags.FLAGS
    try:
        print(f"Loading {f.model} ...", flush=True)
        module = load_module(f.model, f.kind, f.resolution, f.precision, f.format)
        report = deploy.export(module, f.format, f.output, f.overwrite,
                               progress=lambda line: print(line, flush=True))
    except (deploy.ExportError, ValueError, OSError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {report['path']} ({report['bytes'] / 1e6:.1f} MB, {f.format})")
    for name, entry in report["outputs"].items():
        agreement = "".join(f", {label} {100 * entry[key]:.2f}%" for key, label in
                            (("argmax_agreement", "argmax agreement"),
                             ("agreement", "equal values")) if key in entry)
        print(f"  {name}: max |difference| vs Keras {entry['max_abs_diff']:.3g}{agreement}")
    return 0


run = cli.entry_point(main, __name__, "coltran-export")


if __name__ == "__main__":
    run()
