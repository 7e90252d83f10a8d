"""iColoriT forward-pass latency: ms per 224x224 image, batch 1, after warm-up.

  python tools/benchmark_icolorit.py                 # T, S and B
  python tools/benchmark_icolorit.py --presets=T --repeats=50

Times model(inputs) as a compiled tf.function (graph; --jit also times XLA)
on random weights and inputs, median of --repeats calls, next to the paper's
CPU figures (Table 2: AMD Ryzen 5 PRO 4650G, 6 cores). The last line is the
summary against the goals for a 2-core CPU (T <= 60 ms, B <= 400 ms).
"""


import _paths  # noqa: F401
import numpy as np
from _timing import machine, median_ms
from absl import app, flags

flags.DEFINE_list("presets", ["T", "S", "B"], "Model presets (T, S, B, T-patch8, T-patch32).")
flags.DEFINE_integer("repeats", 20, "Timed calls per preset (median reported).")
flags.DEFINE_bool("jit", True, "Also time the XLA-compiled forward.")

PAPER_CPU_MS = {"T": 177, "S": 253, "B": 540, "T-patch8": 373, "T-patch32": 147}
GOALS_MS = {"T": 60, "B": 400}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import tensorflow as tf

    from coltran_tf.icolorit.model import build_icolorit

    f = flags.FLAGS
    print(f"{machine()}; batch 1, 224x224, median of {f.repeats} calls",
          flush=True)
    print(f"{'preset':<10} {'graph ms':>9} {'XLA ms':>8} {'paper CPU ms':>13}", flush=True)
    best = {}
    for preset in f.presets:
        model = build_icolorit(preset)
        inputs = tf.constant(np.random.default_rng(0).uniform(-0.5, 0.5, (1, 224, 224, 4)),
                             tf.float32)
        graph_fn = tf.function(model)
        xla_fn = tf.function(model, jit_compile=True)
        graph = median_ms(lambda f_=graph_fn, x=inputs: np.asarray(f_(x)), f.repeats)
        xla = (median_ms(lambda f_=xla_fn, x=inputs: np.asarray(f_(x)), f.repeats)
               if f.jit else float("nan"))
        best[preset] = min(graph, xla) if f.jit else graph
        print(f"{preset:<10} {graph:>9.1f} {xla:>8.1f} {PAPER_CPU_MS.get(preset, '-'):>13}",
              flush=True)
    parts = [f"{p} {best[p]:.0f} ms (goal <= {GOALS_MS[p]} ms: "
             f"{'met' if best[p] <= GOALS_MS[p] else 'NOT met'})"
             for p in best if p in GOALS_MS]
    others = [f"{p} {best[p]:.0f} ms" for p in best if p not in GOALS_MS]
    print("iColoriT ms per image (best of graph/XLA): " + "; ".join(parts + others))
    return 0


if __name__ == "__main__":
    app.run(main)
