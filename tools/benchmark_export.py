"""Artefact sizes and latencies of coltran-export's formats, in one run.

  python tools/benchmark_export.py                       # bundled demo iColoriT-T, 224x224
  python tools/benchmark_export.py --model=icolorit_tiny.npz --repeats=50
  python tools/benchmark_export.py --model=coltran_tf/demo/colorizer --repeats=3

Exports --model (anything coltran-export takes) to SavedModel, LiteRT and ONNX
(each checked against Keras by the export itself), then times one call of
each runtime on the same input as the export's check (batch 1; the
colorizer's: two images, seeds 0 and 1), median of --repeats after warm-up,
next to the Keras model as the baseline (its serving function as a
tf.function; the colorizer's: the cached sampler compiled by XLA). Formats
that fail to export or whose extra is not installed are reported as such.
"""

import os
import shutil
import tempfile

import _paths  # noqa: F401
import numpy as np
from _timing import machine, median_ms
from absl import app, flags

flags.DEFINE_string("model", None, "Model to export (default: the bundled demo iColoriT-T).")
flags.DEFINE_integer("repeats", 20, "Timed calls per runtime (median reported).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from coltran_tf.demo import icolorit_dir
    from coltran_tf.serving import deploy, load_module

    f = flags.FLAGS
    spec = f.model or icolorit_dir()
    module = load_module(spec)
    inputs = module.example_inputs()
    batch = len(next(iter(inputs.values())))
    print(f"{machine()}; {spec}; batch {batch}; median of {f.repeats} calls",
          flush=True)
    print(f"{'runtime':<28}{'size MB':>9}{'ms':>9}{'vs Keras':>10}  max |diff|", flush=True)
    baseline = median_ms(lambda: {k: np.asarray(v) for k, v in module.serve(**inputs).items()},
                         f.repeats)
    print(f"{'Keras (tf.function)':<28}{'':>9}{baseline:>9.1f}{1.0:>9.2f}x", flush=True)
    root = tempfile.mkdtemp(prefix="benchmark_export-")
    try:
        for fmt in deploy.FORMATS:
            path = os.path.join(root, "model" if fmt == "savedmodel" else f"model.{fmt}")
            # ONNX and LiteRT take the portable graph (the colorizer's differs).
            exported = load_module(spec, fmt=fmt)
            inputs = exported.example_inputs()
            try:
                report = deploy.export(exported, fmt, path)
            except deploy.ExportError as error:
                print(f"{fmt:<28}not measured: {error}", flush=True)
                continue
            if fmt == "savedmodel":
                import tensorflow as tf

                serve = tf.saved_model.load(path).signatures["serving_default"]
                tensors = {k: tf.constant(v) for k, v in inputs.items()}
                call = lambda s=serve, t=tensors: {k: np.asarray(v)  # noqa: E731
                                                   for k, v in s(**t).items()}
            elif fmt == "tflite":
                runner = deploy.litert_interpreter(path).get_signature_runner()
                call = lambda r=runner, x=inputs: r(**x)  # noqa: E731
            else:
                import onnxruntime

                session = onnxruntime.InferenceSession(path,
                                                       providers=["CPUExecutionProvider"])
                feeds = {i.name: np.asarray(inputs[i.name.split(":")[0]])
                         for i in session.get_inputs()}
                call = lambda s=session, d=feeds: s.run(None, d)  # noqa: E731
            ms = median_ms(call, f.repeats)
            worst = max(e["max_abs_diff"] for e in report["outputs"].values())
            name = {"savedmodel": "SavedModel (TF)", "tflite": "LiteRT (ai-edge-litert)",
                    "onnx": "ONNX (onnxruntime)"}[fmt]
            print(f"{name:<28}{report['bytes'] / 1e6:>9.1f}{ms:>9.1f}{baseline / ms:>9.2f}x"
                  f"  {worst:.2g}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
