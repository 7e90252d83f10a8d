"""Training speed of the ColTran configs on this machine: steps/s and examples/s.

  python tools/benchmark_train.py                      # tiny + paper configs, XLA off/on
  python tools/benchmark_train.py --configs=colorizer --steps=5 --batch_size=1

Each config trains on a fixed synthetic batch (so the input pipeline is not
measured) with the real train step: forward, backward, RMSprop, EMA, under the
default one-device strategy. Paper batch sizes are per TPU core (colorizer 7,
color upsampler 24, spatial upsampler 1); --batch_size overrides them. The last
column is the speedup of XLA (config.jit_compile=True) over plain graphs,
measured in the same run; set --config.jit_compile=True for training when
it is above 1.
"""

import time

import _paths  # noqa: F401
import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from configs import color_upsampler, colorizer, spatial_upsampler
from coltran_tf.data.preprocess import make_example
from coltran_tf.train import state as state_lib
from coltran_tf.train import trainer

CONFIGS = {"colorizer": colorizer, "color_upsampler": color_upsampler,
           "spatial_upsampler": spatial_upsampler}

flags.DEFINE_list("configs", list(CONFIGS), f"Which of {list(CONFIGS)} to time.")
flags.DEFINE_list("variants", ["tiny", "paper"], "tiny and/or paper sizes.")
flags.DEFINE_integer("steps", 3, "Timed steps per measurement (after one warm-up call).")
flags.DEFINE_integer("batch_size", 0, "Override the config's batch size (0 = keep).")
flags.DEFINE_bool("xla", True, "Also time with XLA and print its speedup.")


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
    keras.backend.clear_session(free_memory=True)
    train_state = state_lib.build_train_state(config)
    chunk = trainer.make_train_chunk(train_state, tf.distribute.get_strategy(), jit_compile=jit)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    chunk(iterator, tf.constant(1))  # trace / compile
    start = time.perf_counter()
    float(chunk(iterator, tf.constant(steps))["loss"])
    return steps / (time.perf_counter() - start)


def main(argv):
    del argv
    header = f"{'config':<28}{'batch':>6}{'steps/s':>10}{'examples/s':>12}"
    header += f"{'XLA steps/s':>13}{'XLA speedup':>13}" if flags.FLAGS.xla else ""
    print(f"TensorFlow {tf.__version__}, devices: "
          f"{[d.name for d in tf.config.list_logical_devices()]}")
    print(header)
    for name in flags.FLAGS.configs:
        if name not in CONFIGS:
            raise app.UsageError(f"--configs: unknown {name!r}; choose from {list(CONFIGS)}.")
        for variant in flags.FLAGS.variants:
            config = CONFIGS[name].get_config("tiny" if variant == "tiny" else None)
            batch_size = flags.FLAGS.batch_size or int(config.batch_size)
            batch = synthetic_batch(config, batch_size)
            plain = steps_per_second(config, batch, flags.FLAGS.steps, jit=False)
            print(f"{name + ':' + variant:<28}{batch_size:>6}{plain:>10.3f}"
                  f"{plain * batch_size:>12.2f}", end="" if flags.FLAGS.xla else "\n",
                  flush=True)
            if flags.FLAGS.xla:
                try:
                    xla = steps_per_second(config, batch, flags.FLAGS.steps, jit=True)
                    print(f"{xla:>13.3f}{xla / plain:>12.2f}x", flush=True)
                except tf.errors.ResourceExhaustedError:
                    print(f"{'out of memory':>26}", flush=True)


if __name__ == "__main__":
    app.run(main)
