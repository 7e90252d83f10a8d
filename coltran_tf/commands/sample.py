"""Staged ColTran sampling to TFRecords, as the original implementation samples.

  coltran-sample --config=configs/colorizer.py --mode=sample_test --logdir=DIR
  coltran-sample --config=color_upsampler --mode=sample_test \\
      --logdir=DIR2 --config.sample.gen_data_dir=DIR/samples_dir_of_stage1
  coltran-sample --config=colorizer --logdir=DIR --checkpoint=released

(`python -m coltran_tf.commands.sample` is the same command.) Each stage writes
$logdir/$config.sample.log_dir/$gen_file.tfrecords. The model comes from
--checkpoint (a training logdir/checkpoint of ours, an exported model
directory, an original ColTran checkpoint, or `released[:STAGE]` / an
archive URL: the released checkpoints, fetched once into the cache), by
default the training checkpoints in --logdir. --num_hosts/--host_index split
the job.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from coltran_tf.configs import expand_config_flag
from coltran_tf.utils import cli

config_flags.DEFINE_config_file("config", None, "Experiment config: a file (e.g. "
                                "configs/colorizer.py[:variant]) or a preset (colorizer, "
                                "color_upsampler, spatial_upsampler, with :tiny etc.); "
                                "override keys with --config.KEY=V.", lock_config=True)
flags.DEFINE_enum("mode", "sample_test", ["sample_train", "sample_valid", "sample_test"],
                  "Which split's images to sample.")
flags.DEFINE_string("logdir", None, "Output root (and default checkpoint location).")
flags.DEFINE_string("checkpoint", None, "Model to sample from (default: --logdir): a "
                    "checkpoint or model directory, or released[:STAGE] / a zip URL.")
flags.DEFINE_integer("num_hosts", 1, "Split the job into this many shards (one per host).")
flags.DEFINE_integer("host_index", 0, "This host's shard, 0..num_hosts-1; writes gen<index>.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS.logdir:
        raise app.UsageError("--logdir is required.")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from coltran_tf.checkpoints.released import resolve_checkpoint
    from coltran_tf.sampling.staged import run_stage
    from coltran_tf.utils.download import FetchError

    report = lambda line: print(line, flush=True)  # noqa: E731
    try:
        checkpoint = resolve_checkpoint(flags.FLAGS.checkpoint, flags.FLAGS.config, report)
        path = run_stage(flags.FLAGS.config, os.path.abspath(flags.FLAGS.logdir),
                         flags.FLAGS.mode, checkpoint, flags.FLAGS.num_hosts,
                         flags.FLAGS.host_index, report=report)
    except FetchError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted. Finished batches are kept; run the same command again to "
              "continue.", file=sys.stderr)
        return 130
    except FileNotFoundError as error:
        print(f"Error: {error}\nTrain a model into --logdir with `coltran-train` "
              "or pass --checkpoint=PATH.", file=sys.stderr)
        return 2
    except ValueError as error:  # gen_data_dir, checkpoint and data problems say their fix
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {path}")


run = cli.entry_point(main, __name__, "coltran-sample", expand=expand_config_flag,
                      required=["config"])


if __name__ == "__main__":
    run()
