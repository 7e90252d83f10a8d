"""Colorizer sampling speed: the original algorithm against the cached sampler.

  python tools/benchmark_sampler.py                       # tiny and paper, batch 1 and 20
  python tools/benchmark_sampler.py --variants=paper --batch_sizes=1

For each config and batch size, on the same (randomly initialised) weights and
grayscale inputs, in the same run, it times
  * the original algorithm (coltran_tf/sampling/colorizer_sampler.py: the
    inner decoder over the whole row per pixel, the outer decoder over the
    whole image per row), twice:
      "eager": executed as the original implementation executes it, a Python
        loop that calls the Keras decoders op by op for every pixel (our port
        run with tf.config.run_functions_eagerly);
      "loop": our port as one compiled tf.function (no per-pixel Python), the
        stronger baseline.
    Both are slow (minutes per image at paper size), so they sample only the
    first --loop_rows rows; every row costs the same there, so the total is
    estimated as encoder + rows * 64 / loop_rows, with the encoder timed on
    its own;
  * the cached sampler (coltran_tf/sampling/cached_sampler.py), in full,
and prints seconds per image (and images/s) of each, the cached sampler's
speedup over both and the peak memory. It also times the upsamplers'
bounded-memory inference at paper size (--upsampler_batch images of 256x256
for the spatial upsampler). Times are after one warm-up call (tracing); the
cached sampler's is the median of --repeats calls. Every measurement runs in
its own process. The last line gives the paper-config speedups.
"""

import json
import os
import resource
import subprocess
import sys
import time

import _paths  # noqa: F401
import numpy as np
from _timing import machine, median_ms
from absl import app, flags

flags.DEFINE_list("variants", ["tiny", "paper"], "tiny and/or paper colorizer sizes.")
flags.DEFINE_list("batch_sizes", ["1", "20"], "Batch sizes to time.")
flags.DEFINE_integer("loop_rows", 1, "Rows of the original algorithm actually sampled.")
flags.DEFINE_integer("repeats", 3, "Timed calls of the cached sampler (median).")
flags.DEFINE_bool("eager", True, "Also time the original algorithm executed eagerly, as the "
                  "original implementation runs it (--noeager: only our compiled port).")
flags.DEFINE_integer("upsampler_batch", 8, "Spatial upsampler batch at paper size (0: skip).")
flags.DEFINE_string("measure", None, "Internal: run one measurement in this process and "
                    "print 'RESULT <json>'.")


def _peak_memory_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _timed(fn):
    fn()  # warm-up: tracing
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _colorizer(variant):
    from coltran_tf.models.builder import build_model
    from configs import colorizer

    model = build_model(colorizer.get_config("tiny" if variant == "tiny" else None))
    model(np.zeros((1, 64, 64, 3), np.int32))
    return model


def _macs_per_pixel(layer, length: int) -> int:
    """Multiply-adds of one pass of `layer` per pixel: every per-pixel kernel once,
    plus query-key and weight-value products over `length` keys per attention.
    Conditional-LayerNorm kernels (applied to the pooled context, once per
    image) and embedding tables are not per-pixel work."""
    macs = 0
    for weight in layer.weights:
        path = weight.path
        if path.endswith("/kernel") and "/norm/" not in path:
            macs += int(np.prod(weight.shape))
        elif path.endswith("relative_attention_bias"):
            macs += 2 * length * layer.hidden_size
    return macs


def algorithm_macs(model) -> dict:
    """Multiply-adds per image of the original algorithm and the cached sampler.

    Original: encoder once, the outer decoder over the whole image after each
    of the H rows, the inner decoder over the whole row for each of the H*W
    pixels. Cached: encoder, outer and inner decoders once per pixel. Both:
    the final logits per pixel and the parallel head once.
    """
    height, width = model.outer_decoder.height, model.outer_decoder.width
    pixels = height * width
    encoder = _macs_per_pixel(model.encoder, width)
    outer = _macs_per_pixel(model.outer_decoder, width)
    inner = _macs_per_pixel(model.inner_decoder, width)
    heads = sum(int(np.prod(w.shape)) for w in model.weights
                if w.path.endswith("/kernel") and ("final" in w.path or "parallel" in w.path))
    loop = pixels * (encoder + height * outer + width * inner + heads)
    cached = pixels * (encoder + outer + inner + heads)
    return {"loop": loop, "cached": cached}


def measure(spec: str) -> dict:
    import tensorflow as tf

    kind, variant, batch = spec.split(":")
    batch = int(batch)
    rng = np.random.default_rng(0)
    if kind == "spatial":
        from coltran_tf.models.builder import build_model
        from configs import spatial_upsampler

        model = build_model(spatial_upsampler.get_config(None))
        res = model.resolution
        gray = rng.integers(0, 256, (batch, res, res, 1)).astype(np.int32)
        blurry = rng.integers(0, 256, (batch, res, res, 3)).astype(np.int32)
        seconds = _timed(lambda: model.sample_channels(gray, blurry, "argmax"))
        return {"seconds": seconds, "peak_gb": _peak_memory_gb()}
    model = _colorizer(variant)
    if kind == "macs":
        return algorithm_macs(model)
    gray = rng.integers(0, 256, (batch, 64, 64, 1)).astype(np.int32)
    if kind == "cached":
        from coltran_tf.sampling.cached_sampler import sample_colorizer_cached

        seconds = median_ms(lambda: sample_colorizer_cached(model, gray, mode="sample", seeds=0),
                            repeats=flags.FLAGS.repeats, warmups=1) / 1000
        return {"seconds": seconds, "peak_gb": _peak_memory_gb()}
    from coltran_tf.sampling.colorizer_sampler import sample_colorizer_loop

    rows = flags.FLAGS.loop_rows
    if kind == "eager":  # every tf.function below runs op by op from Python
        tf.config.run_functions_eagerly(True)
    encode = tf.function(lambda g: model.encode(g))
    encoder = _timed(lambda: encode(tf.constant(gray)).numpy())
    partial = _timed(lambda: sample_colorizer_loop(model, gray, mode="sample", seed=0,
                                                   num_rows=rows))
    seconds = encoder + (partial - encoder) * model.resolution / rows
    return {"seconds": seconds, "timed_rows": rows, "peak_gb": _peak_memory_gb()}


def _run(spec: str) -> dict | None:
    command = [sys.executable, os.path.abspath(__file__), f"--measure={spec}",
               f"--loop_rows={flags.FLAGS.loop_rows}", f"--repeats={flags.FLAGS.repeats}"]
    result = subprocess.run(command, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    print(f"  {spec}: failed (exit {result.returncode}): {result.stderr.strip()[-500:]}",
          flush=True)
    return None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if flags.FLAGS.measure:
        print("RESULT " + json.dumps(measure(flags.FLAGS.measure)), flush=True)
        return 0
    print(machine(), flush=True)
    print(f"original algorithm: first {flags.FLAGS.loop_rows} row(s) timed, scaled to 64 "
          "rows (every row costs the same); cached sampler: timed in full", flush=True)
    print("  eager = the original algorithm as the original implementation runs it (op by op "
          "from Python); loop = our port of it as one compiled tf.function", flush=True)
    header = (f"{'config':<8} {'batch':>5} {'eager s/img':>12} {'loop s/img':>11} "
              f"{'cached s/img':>13} {'cached img/s':>13} {'batch s':>8} {'vs eager':>9} "
              f"{'vs loop':>8} {'peak GB':>8}")
    print(header, flush=True)
    speedups = {}
    for variant in flags.FLAGS.variants:
        for batch in (int(b) for b in flags.FLAGS.batch_sizes):
            eager = _run(f"eager:{variant}:{batch}") if flags.FLAGS.eager else None
            loop = _run(f"loop:{variant}:{batch}")
            cached = _run(f"cached:{variant}:{batch}")
            if not loop or not cached:
                continue
            ratio = loop["seconds"] / cached["seconds"]
            eager_ratio = eager["seconds"] / cached["seconds"] if eager else None
            speedups[variant, batch] = (eager and eager["seconds"], loop["seconds"],
                                        cached["seconds"], eager_ratio, ratio)
            peak = max(r["peak_gb"] for r in (eager, loop, cached) if r)
            eager_s = f"{eager['seconds'] / batch:>12.2f}" if eager else f"{'-':>12}"
            eager_x = f"{eager_ratio:>8.1f}x" if eager else f"{'-':>9}"
            print(f"{variant:<8} {batch:>5} {eager_s} {loop['seconds'] / batch:>11.2f} "
                  f"{cached['seconds'] / batch:>13.3f} {batch / cached['seconds']:>13.2f} "
                  f"{cached['seconds']:>8.1f} {eager_x} {ratio:>7.1f}x {peak:>8.2f}", flush=True)
    if flags.FLAGS.upsampler_batch:
        batch = flags.FLAGS.upsampler_batch
        spatial = _run(f"spatial:paper:{batch}")
        if spatial:
            print(f"spatial upsampler, paper size, batch {batch} at 256x256 (argmax): "
                  f"{spatial['seconds']:.1f} s, peak memory {spatial['peak_gb']:.2f} GB",
                  flush=True)
    for variant in flags.FLAGS.variants:
        macs = _run(f"macs:{variant}:1")
        if macs:
            print(f"{variant}: arithmetic per image (multiply-adds): original "
                  f"{macs['loop'] / 1e9:.0f} G, cached {macs['cached'] / 1e9:.1f} G, ratio "
                  f"{macs['loop'] / macs['cached']:.1f}x = the speedup at equal arithmetic "
                  "speed (the original runs large matmuls; the cached sampler at batch 1 "
                  "matrix-vector products)", flush=True)
    parts = []
    for batch in sorted(b for v, b in speedups if v == "paper"):
        eager_s, loop_s, cached_s, eager_ratio, ratio = speedups["paper", batch]
        part = (f"batch {batch}: cached {cached_s / batch:.2f} s/image ({cached_s:.1f} s per "
                "batch), ")
        if eager_s:
            part += (f"{eager_ratio:.1f}x vs the original as it runs ({eager_s / batch:.0f} "
                     "s/image), ")
        parts.append(part + f"{ratio:.1f}x vs our compiled port ({loop_s / batch:.1f} s/image)")
    if parts:
        print("paper config speedup of the cached sampler: " + "; ".join(parts))
    else:
        print("no paper-config measurement (see --variants)")
    return 0


if __name__ == "__main__":
    app.run(main)
