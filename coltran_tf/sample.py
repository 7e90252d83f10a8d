"""Staged ColTran sampling to TFRecords (spec §8).

  python -m coltran_tf.sample --config=configs/colorizer.py --mode=sample_test --logdir=DIR
  python -m coltran_tf.sample --config=configs/color_upsampler.py --mode=sample_test \\
      --logdir=DIR2 --config.sample.gen_data_dir=DIR/samples_dir_of_stage1

Each stage writes $logdir/$config.sample.log_dir/$gen_file.tfrecords. The
model comes from --checkpoint (a training logdir/checkpoint of ours, an
exported model directory or an original ColTran checkpoint), by default the
training checkpoints in --logdir. --num_hosts/--host_index split the job.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

config_flags.DEFINE_config_file("config", None, "Experiment config file (e.g. "
                                "configs/colorizer.py); override keys with --config.KEY=V.",
                                lock_config=True)
flags.DEFINE_enum("mode", "sample_test", ["sample_train", "sample_valid", "sample_test"],
                  "Which split's images to sample.")
flags.DEFINE_string("logdir", None, "Output root (and default checkpoint location).")
flags.DEFINE_string("checkpoint", None, "Model to sample from (default: --logdir).")
flags.DEFINE_integer("num_hosts", 1, "Split the job into this many shards (one per host).")
flags.DEFINE_integer("host_index", 0, "This host's shard, 0..num_hosts-1; writes gen<index>.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS.logdir:
        raise app.UsageError("--logdir is required.")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from coltran_tf.sampling.staged import run_stage

    try:
        path = run_stage(flags.FLAGS.config, os.path.abspath(flags.FLAGS.logdir),
                         flags.FLAGS.mode, flags.FLAGS.checkpoint, flags.FLAGS.num_hosts,
                         flags.FLAGS.host_index, report=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("Interrupted. Finished batches are kept; run the same command again to "
              "continue.", file=sys.stderr)
        return 130
    except FileNotFoundError as error:
        print(f"Error: {error}\nTrain a model into --logdir with `python -m coltran_tf.run` "
              "or pass --checkpoint=PATH.", file=sys.stderr)
        return 2
    except ValueError as error:  # gen_data_dir, checkpoint and data problems say their fix
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {path}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main)
