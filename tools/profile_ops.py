"""Where the time goes, float32 vs bfloat16: a per-op profile of one workload.

  python tools/profile_ops.py --workload=spatial        # paper spatial upsampler, one channel
  python tools/profile_ops.py --workload=sampler        # paper cached sampler (XLA), batch 1
  python tools/profile_ops.py --workload=icolorit --top=12
  python tools/profile_ops.py --workload=matmul         # the raw matmul ceiling of this CPU

Runs the workload once to warm up (tracing, compilation), then once more under
TensorFlow's profiler in each precision, and prints the self time of each kind
of op (TensorFlow kernels by op type, XLA thunks by fusion kind) side by side
with the ratio float32 / bfloat16. Self time excludes nested events (an op's
own time, not its children's) and is summed over the executor threads, so the
total is CPU time, larger than the wall time on a multi-core machine. The
caller's Python thread is left out (it waits on the graph).

Workloads (same random weights both ways, paper sizes):
  spatial   the spatial upsampler's parallel pass over one 256x256 channel (graph);
  sampler   the cached colorizer sampler, 64x64, --batch (one XLA computation);
  icolorit  iColoriT --icolorit_size on one 224x224 input (graph);
  matmul    tf.matmul of the shapes these models multiply (no profile: GFLOP/s),
            the ceiling any whole-model bfloat16 speedup on this CPU is under.
"""

import collections
import glob
import os
import re
import shutil
import tempfile
import time

import _paths  # noqa: F401
import numpy as np
from _timing import machine
from absl import app, flags

WORKLOADS = ("spatial", "sampler", "icolorit", "matmul")
PRECISIONS = ("float32", "bfloat16")
# Events that only wrap others (executor and XLA runtime scaffolding).
_CONTAINERS = re.compile(r"^(ExecutorState::Process|Execute|while|Await|ParallelFor|"
                         r"KernelAndDeviceFunc::Run|EagerExecute|EagerKernelExecute|BlockUntilReady)$")
# Matmul shapes (M, K, N): a large reference product, then the paper models'
# own: the upsamplers' dense layers over a 256x256 channel, the colorizer's over
# a 64x64 image, iColoriT-B's MLP over 196 tokens, a decoding step at batch 1.
MATMUL_SHAPES = ((4096, 1024, 1024), (65536, 512, 512), (4096, 512, 512), (196, 768, 3072),
                 (1, 512, 512))


def _define_flags():
    flags.DEFINE_enum("workload", "spatial", WORKLOADS, "What to profile (see above).")
    flags.DEFINE_integer("top", 15, "Op kinds shown (by bfloat16 self time).")
    flags.DEFINE_integer("batch", 1, "sampler: images per call.")
    flags.DEFINE_string("icolorit_size", "B", "icolorit: the preset (T, S, B).")


def op_kind(event_name: str) -> str:
    """'enc/layer_3/q/MatMul:_MklMatMul' -> '_MklMatMul'; 'loop_add_fusion.12' ->
    'loop_add_fusion' (XLA thunks carry numbered instruction names)."""
    kind = event_name.rsplit(":", 1)[-1].strip()
    return re.sub(r"([._]\d+)+$", "", kind)


def self_times(space) -> collections.Counter:
    """{op kind: self time in ms} over every non-Python thread of an XSpace."""
    totals = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name == "python" or not line.events:
                continue
            events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
            stack = []  # [end_ps, name, duration_ps, children_ps] of the enclosing events
            for event in events:
                start, end = event.offset_ps, event.offset_ps + event.duration_ps
                while stack and stack[-1][0] <= start:
                    _close(stack.pop(), totals)
                if stack:
                    stack[-1][3] += event.duration_ps
                stack.append([end, names.get(event.metadata_id, "?"), event.duration_ps, 0])
            while stack:
                _close(stack.pop(), totals)
    return totals


def _close(entry, totals) -> None:
    _, name, duration, children = entry
    if not (_CONTAINERS.match(name) or _CONTAINERS.match(op_kind(name))):
        totals[op_kind(name)] += max(0, duration - children) / 1e9


def profile(call, logdir: str):
    """(wall seconds, {op kind: self ms}) of one call() under the profiler."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    try:
        call()
    finally:
        wall = time.perf_counter() - start
        tf.profiler.experimental.stop()
    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    if not paths:
        raise RuntimeError(f"The profiler wrote no trace under {logdir}.")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    return wall, self_times(space)


def _workload(name: str, precision: str, weights):
    """(call, weights) of the workload in `precision`; weights are shared so both
    precisions run the same model."""
    import keras
    import tensorflow as tf

    from coltran_tf.configs import get_preset
    from coltran_tf.models.builder import build_model

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    if name == "icolorit":
        from coltran_tf.icolorit.model import build_icolorit

        model = build_icolorit(flags.FLAGS.icolorit_size, precision)
        x = rng.normal(size=(1, 224, 224, 4)).astype(np.float32)
        forward = tf.function(lambda t: model(t))
        call = lambda: np.asarray(forward(x))  # noqa: E731
    elif name == "spatial":
        model = build_model(get_preset("spatial_upsampler", ""), precision)
        gray = tf.constant(rng.integers(0, 256, (1, 256, 256)), tf.int32)
        channel = tf.constant(rng.integers(0, 256, (1, 256, 256)), tf.int32)
        forward = tf.function(lambda g, c: tf.argmax(
            model.channel_logits(model.gray_embedding(g), c, 0), -1))
        call = lambda: np.asarray(forward(gray, channel))  # noqa: E731
    else:
        from coltran_tf.sampling.cached_sampler import sample_colorizer_cached

        model = build_model(get_preset("colorizer", ""), precision)
        gray = rng.integers(0, 256, (flags.FLAGS.batch, 64, 64, 1))
        call = lambda: sample_colorizer_cached(model, gray, seeds=0)  # noqa: E731
    if weights is None:
        weights = model.get_weights()
    else:
        model.set_weights(weights)
    return call, weights


def matmul_ceiling(report) -> None:
    import tensorflow as tf

    report(f"{'tf.matmul (M, K, N)':<28}{'f32 GFLOP/s':>12}{'bf16 GFLOP/s':>13}{'ratio':>8}")
    for m, k, n in MATMUL_SHAPES:
        rates = {}
        for precision in PRECISIONS:
            a = tf.cast(tf.random.normal((m, k)), precision)
            b = tf.cast(tf.random.normal((k, n)), precision)
            product = tf.function(lambda x, y: tf.reduce_sum(tf.cast(
                tf.matmul(x, y)[:1, :1], "float32")))
            product(a, b)
            repeats = max(3, int(4e10 // (2 * m * k * n)))
            start = time.perf_counter()
            for _ in range(repeats):
                product(a, b).numpy()
            rates[precision] = 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9
        report(f"{str((m, k, n)):<28}{rates['float32']:>12.1f}{rates['bfloat16']:>13.1f}"
               f"{rates['float32'] and rates['bfloat16'] / rates['float32']:>7.2f}x")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    report = lambda line: print(line, flush=True)  # noqa: E731
    report(f"{machine()}; workload {f.workload}")
    if f.workload == "matmul":
        matmul_ceiling(report)
        return
    root = tempfile.mkdtemp(prefix="profile_ops-")
    walls, totals, weights = {}, {}, None
    try:
        for precision in PRECISIONS:
            call, weights = _workload(f.workload, precision, weights)
            call()  # warm-up: tracing, compilation, caches
            walls[precision], totals[precision] = profile(
                call, os.path.join(root, precision))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    f32, bf16 = totals["float32"], totals["bfloat16"]
    report(f"{'':<40}{'float32':>10}{'bfloat16':>10}{'ratio':>8}")
    report(f"{'wall time (s)':<40}{walls['float32']:>10.3f}{walls['bfloat16']:>10.3f}"
           f"{walls['float32'] / walls['bfloat16']:>7.2f}x")
    report(f"{'CPU time in ops (s)':<40}{sum(f32.values()) / 1e3:>10.3f}"
           f"{sum(bf16.values()) / 1e3:>10.3f}"
           f"{sum(f32.values()) / max(sum(bf16.values()), 1e-9):>7.2f}x")
    report(f"{'op kind (self ms, all threads)':<40}{'float32':>10}{'bfloat16':>10}{'ratio':>8}"
           f"{'share bf16':>11}")
    everything = sum(bf16.values()) or 1.0
    shown = sorted(set(f32) | set(bf16), key=lambda k: -max(bf16.get(k, 0), f32.get(k, 0)))
    for kind in shown[:f.top]:
        a, b = f32.get(kind, 0.0), bf16.get(kind, 0.0)
        ratio = f"{a / b:>7.2f}x" if a and b else f"{'-':>8}"
        report(f"{kind[:39]:<40}{a:>10.1f}{b:>10.1f}{ratio}{100 * b / everything:>10.1f}%")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
