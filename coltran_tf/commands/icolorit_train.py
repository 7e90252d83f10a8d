"""Train iColoriT (the `icolorit-train` command; `python -m coltran_tf.commands.icolorit_train`).

  icolorit-train --config=configs/icolorit.py --logdir=DIR
  icolorit-train --config=icolorit:tiny --logdir=/tmp/ic

--config takes an experiment file or the preset `icolorit[:variant]`. Resumes
from the newest checkpoint in --logdir; writes DIR/model/ for
`icolorit-colorize --weights=DIR/model`. Strategies as
ColTran training: --accelerator_type=auto|CPU|GPU|TPU, --devices_per_worker,
multi-worker through TF_CONFIG.
"""

from absl import app, flags
from ml_collections import config_flags

from coltran_tf.configs import expand_config_flag
from coltran_tf.utils import cli

config_flags.DEFINE_config_file("config", None, "Config file[:variant] or preset, e.g. "
                                "configs/icolorit.py:S or icolorit:tiny.", lock_config=True)
flags.DEFINE_string("logdir", None, "Checkpoints, log.jsonl and the final model/ go here.")
flags.DEFINE_enum("accelerator_type", "auto", ["auto", "CPU", "GPU", "TPU"], "Device kind.")
flags.DEFINE_string("master", "", "TPU address or name (TPU only).")
flags.DEFINE_integer("devices_per_worker", 0, "Devices to mirror over (0: all GPUs / one CPU).")
cli.define_training_flags()
flags.mark_flags_as_required(["config", "logdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import sys

    from coltran_tf.data.sources import DataError
    from coltran_tf.icolorit.training import train
    from coltran_tf.utils.distribute import get_strategy

    f = flags.FLAGS
    cli.apply_deterministic_ops()
    strategy = get_strategy(f.accelerator_type, f.master, f.devices_per_worker)
    try:
        train(f.config, f.logdir, strategy, resume_with_changes=f.resume_with_changes)
    except (DataError, ValueError, FloatingPointError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    return 0


run = cli.entry_point(main, __name__, "icolorit-train", expand=expand_config_flag)


if __name__ == "__main__":
    run()
