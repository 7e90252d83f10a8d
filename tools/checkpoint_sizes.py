"""How large a training checkpoint of each paper config is, and what of it the
exact resume adds (the data stream's position and the seed generators' states).

  python tools/checkpoint_sizes.py
  python tools/checkpoint_sizes.py --configs=colorizer,icolorit:B

Builds each config's full training state (model, optimizer slots, EMA for
ColTran, the stream position and seed generators), writes one checkpoint to
a temporary folder and prints its size on disk, the bytes of the resume
state, and what saving the `tf.data` iterator instead would have added: the
shuffle buffer of decoded images (config.data.shuffle_buffer x the mean
decoded ImageNet photo, 400 x 350 x 3 bytes).
"""

import os
import tempfile

import _paths  # noqa: F401
import tensorflow as tf
from absl import app, flags, logging

from coltran_tf.configs import get_preset

flags.DEFINE_list("configs", ["colorizer", "color_upsampler", "spatial_upsampler",
                              "icolorit:T", "icolorit:S", "icolorit:B"],
                  "Presets (preset or preset:variant) whose paper config is measured.")

MEAN_DECODED_PHOTO = 400 * 350 * 3  # bytes of a mean ImageNet photo, decoded


def _state(name: str, variant: str):
    config = get_preset(name, variant or "paper")
    if name == "icolorit":
        from coltran_tf.icolorit import training

        return config, training.build_state(config)[3]
    from coltran_tf.train import state as state_lib

    return config, state_lib.build_train_state(config).checkpoint


def _size(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))


def measure(spec: str) -> dict:
    name, _, variant = spec.partition(":")
    config, checkpoint = _state(name, variant)
    with tempfile.TemporaryDirectory() as directory:
        path = checkpoint.write(os.path.join(directory, "ckpt"))
        total = _size(directory)
        reader = tf.train.load_checkpoint(path)
        resume = sum(reader.get_tensor(n).nbytes for n, _ in tf.train.list_variables(path)
                     if n.startswith(("stream/", "random/")))
    return {"config": spec, "total": total, "resume": resume,
            "iterator": int(config.data.shuffle_buffer) * MEAN_DECODED_PHOTO}


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TensorFlow's saver logs each write at INFO
    print(f"{'config':20s} {'checkpoint':>12s} {'resume state':>13s} "
          f"{'iterator would add':>19s}")
    for spec in flags.FLAGS.configs:
        row = measure(spec)
        print(f"{row['config']:20s} {row['total'] / 2**20:9.1f} MiB {row['resume']:7d} bytes "
              f"{row['iterator'] / 2**20:15.0f} MiB", flush=True)


if __name__ == "__main__":
    import sys

    from coltran_tf.utils import cli

    cli.quiet_start(sys.argv)
    app.run(main)
