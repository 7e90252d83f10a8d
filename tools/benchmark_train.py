"""Training speed of the ColTran configs on this machine: steps/s and examples/s.

  python tools/benchmark_train.py                      # tiny + paper configs, XLA off/on
  python tools/benchmark_train.py --configs=colorizer --steps=5 --batch_size=1
  python tools/benchmark_train.py --variants=paper --precisions=float32,bfloat16 --noxla

Each config trains on a fixed synthetic batch (so the input pipeline is not
measured) with the real train step: forward, backward, RMSprop, EMA, under the
default one-device strategy. Paper batch sizes are per TPU core (colorizer 7,
color upsampler 24, spatial upsampler 1); --batch_size overrides them. The last
column is the speedup of XLA (config.jit_compile=True) over plain graphs,
measured in the same run; set --config.jit_compile=True for training when
it is above 1. Every measurement runs in its own process; one that runs out
of memory is reported as such.
"""

import os
import subprocess
import sys
import time

import _paths  # noqa: F401
import numpy as np
import tensorflow as tf
from _timing import machine
from absl import app, flags

from coltran_tf.data.preprocess import make_example
from coltran_tf.train import state as state_lib
from coltran_tf.train import trainer
from configs import color_upsampler, colorizer, spatial_upsampler

CONFIGS = {"colorizer": colorizer, "color_upsampler": color_upsampler,
           "spatial_upsampler": spatial_upsampler}

flags.DEFINE_list("configs", list(CONFIGS), f"Which of {list(CONFIGS)} to time.")
flags.DEFINE_list("variants", ["tiny", "paper"], "tiny and/or paper sizes.")
flags.DEFINE_integer("steps", 3, "Timed steps per measurement (after one warm-up call).")
flags.DEFINE_integer("batch_size", 0, "Override the config's batch size (0 = keep).")
flags.DEFINE_bool("xla", True, "Also time with XLA and print its speedup.")
flags.DEFINE_list("precisions", ["float32"], "float32 and/or bfloat16 (config.precision); "
                  "with both, the last column is bfloat16's speedup over float32 (plain graphs).")
flags.DEFINE_string("measure", None, "Internal: time one NAME:VARIANT:plain|xla in this "
                    "process and print 'RESULT batch steps/s' (each measurement runs in a "
                    "fresh process so that memory of one does not burden the next).")


def synthetic_batch(config, batch_size: int) -> dict:
    rng = np.random.default_rng(0)
    examples = [make_example(rng.integers(0, 256, (300, 400, 3), dtype=np.int32), 0, [0, i],
                             resolution=int(config.resolution[0]),
                             downsample=bool(config.downsample),
                             downsample_res=int(config.downsample_res),
                             random_channel=bool(config.random_channel), training=True)
                for i in range(batch_size)]
    return {k: tf.stack([e[k] for e in examples]) for k in examples[0]}


def steps_per_second(config, batch, steps: int, jit: bool) -> float:
    train_state = state_lib.build_train_state(config)
    chunk = trainer.make_train_chunk(train_state, tf.distribute.get_strategy(), jit_compile=jit)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    chunk(iterator, tf.constant(1))  # trace / compile
    start = time.perf_counter()
    float(chunk(iterator, tf.constant(steps))["loss"])
    return steps / (time.perf_counter() - start)


def measure(spec: str) -> None:
    """Times one NAME:VARIANT:JIT:PRECISION (run in its own process), prints RESULT."""
    name, variant, jit, precision = spec.split(":")
    config = CONFIGS[name].get_config("tiny" if variant == "tiny" else None)
    config.precision = precision
    batch_size = flags.FLAGS.batch_size or int(config.batch_size)
    rate = steps_per_second(config, synthetic_batch(config, batch_size), flags.FLAGS.steps,
                            jit=jit == "xla")
    print(f"RESULT {batch_size} {rate}")


def run_isolated(name: str, variant: str, jit: str, precision: str = "float32"):
    """(batch, steps/s) from a fresh process, or None when it ran out of memory."""
    args = [sys.executable, os.path.abspath(__file__),
            f"--measure={name}:{variant}:{jit}:{precision}",
            f"--steps={flags.FLAGS.steps}", f"--batch_size={flags.FLAGS.batch_size}"]
    result = subprocess.run(args, capture_output=True, text=True)
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            batch, rate = line.split()[1:]
            return int(batch), float(rate)
    if result.returncode in (-9, 137) or "ResourceExhausted" in result.stderr:
        return None
    raise RuntimeError(f"Measuring {name}:{variant}:{jit} failed:\n{result.stderr[-3000:]}")


def main(argv):
    del argv
    if flags.FLAGS.measure:
        measure(flags.FLAGS.measure)
        return
    precisions = flags.FLAGS.precisions
    for precision in precisions:
        if precision not in ("float32", "bfloat16"):
            raise app.UsageError(f"--precisions: unknown {precision!r}; float32 or bfloat16.")
    compare = len(precisions) > 1
    header = f"{'config':<38}{'batch':>6}{'steps/s':>10}{'examples/s':>12}"
    header += f"{'XLA steps/s':>13}{'XLA speedup':>13}" if flags.FLAGS.xla else ""
    header += f"{'vs float32':>12}" if compare else ""
    print(f"TensorFlow {tf.__version__}, {machine()}, devices: "
          f"{[d.name for d in tf.config.list_logical_devices()]}, one process per measurement")
    print(header)
    for name in flags.FLAGS.configs:
        if name not in CONFIGS:
            raise app.UsageError(f"--configs: unknown {name!r}; choose from {list(CONFIGS)}.")
        for variant in flags.FLAGS.variants:
            baseline = None
            for precision in precisions:
                label = f"{name + ':' + variant + ' ' + precision:<38}"
                plain = run_isolated(name, variant, "plain", precision)
                if plain is None:
                    print(f"{label}{'out of memory':>28}", flush=True)
                    continue
                batch_size, rate = plain
                line = f"{label}{batch_size:>6}{rate:>10.3f}{rate * batch_size:>12.2f}"
                if flags.FLAGS.xla:
                    xla = run_isolated(name, variant, "xla", precision)
                    line += (f"{xla[1]:>13.3f}{xla[1] / rate:>12.2f}x" if xla
                             else f"{'out of memory':>26}")
                baseline = rate if precision == "float32" else baseline
                if compare and precision != "float32" and baseline:
                    line += f"{rate / baseline:>11.2f}x"
                print(line, flush=True)


if __name__ == "__main__":
    app.run(main)
