r"""Converts a checkpoint written by the original ColTran into coltran_tf's format.

Example (the released ImageNet colorizer, unzipped by hand):

  coltran-convert --config=colorizer --checkpoint=coltran/colorizer --output=models/colorizer

(`python -m coltran_tf.commands.convert` is the same command; `--checkpoints=released`
of coltran-colorize does this for all three stages, into the cache.) The
config must describe the checkpoint's model: a preset (colorizer,
color_upsampler, spatial_upsampler, with :tiny etc.) or an experiment file (our
configs use the original key names, so the original config files' values
carry over; a JSON
file with the original config, or a fixture's layout.json, works with
--config_json). EMA (Polyak) averages are loaded by default, as the original
does for evaluation and sampling; --raw loads the training weights. Optimizer
state is ignored. A checkpoint that does not match the config is refused,
naming the missing, unused and mis-shaped keys; nothing is written then.
"""

import json
import sys

from absl import app, flags
from ml_collections import config_flags

from coltran_tf.configs import expand_config_flag
from coltran_tf.utils import cli

config_flags.DEFINE_config_file(
    "config", None, "Config of the checkpoint's model: a preset (e.g. colorizer, "
    "spatial_upsampler:tiny) or a file (e.g. configs/colorizer.py).", lock_config=True)
flags.DEFINE_string("config_json", None, "Instead of --config: a JSON file with the "
                    "original config dict, or a layout.json whose 'config' key holds it.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (DIR/model-N) or a directory "
                    "containing a 'checkpoint' file.", required=True)
flags.DEFINE_string("output", None, "Output directory (config.json, model.weights.h5, "
                    "metadata.json).", required=True)
flags.DEFINE_bool("raw", False, "Load the raw training weights instead of the EMA averages.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output directory.")
FLAGS = flags.FLAGS


def _config():
    if (FLAGS.config is None) == (FLAGS.config_json is None):
        raise app.UsageError("Give exactly one of --config and --config_json.")
    if FLAGS.config is not None:
        return FLAGS.config
    with open(FLAGS.config_json) as f:
        data = json.load(f)
    return data.get("config", data)


def main(argv):
    del argv
    from coltran_tf.checkpoints.convert import convert_reference_checkpoint
    from coltran_tf.checkpoints.reference import ReferenceCheckpointMismatch

    try:
        summary = convert_reference_checkpoint(_config(), FLAGS.checkpoint, FLAGS.output,
                                               use_ema=not FLAGS.raw, overwrite=FLAGS.overwrite)
    except (ReferenceCheckpointMismatch, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    weights = "EMA averages" if summary["ema"] else "raw weights"
    print(f"Converted {summary['checkpoint']} ({summary['model']}, {summary['variables']} "
          f"variables, {weights}; {summary['ignored']} optimizer/bookkeeping keys ignored) "
          f"-> {summary['output_dir']}")
    return 0


run = cli.entry_point(main, __name__, "coltran-convert", expand=expand_config_flag)


if __name__ == "__main__":
    run()
