"""Train, evaluate or export a ColTran model (the `coltran-train` command).

  coltran-train --config=configs/colorizer.py --mode=train --logdir=DIR
  coltran-train --config=configs/colorizer.py --mode=eval_valid --logdir=DIR
  coltran-train --config=colorizer:tiny --mode=train --logdir=/tmp/c \\
      --config.max_train_steps=50 --steps_per_summaries=10
  coltran-train --config=colorizer --mode=eval_test --logdir=DIR --checkpoint=released

(`python -m coltran_tf.commands.train` is the same command.) --config takes an
experiment file or a preset (colorizer, color_upsampler, spatial_upsampler,
with variants after a colon).

Modes: train, eval_train, eval_valid, eval_test, export. Any config key can be
overridden (--config.batch_size=4, --config.dataset=folder
--config.data.data_dir=PHOTOS). Distribution: one device by default, all local
GPUs with MirroredStrategy, MultiWorkerMirroredStrategy when TF_CONFIG names a
cluster, TPUStrategy with --accelerator_type=TPU --master=ADDRESS.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from coltran_tf.configs import expand_config_flag
from coltran_tf.utils import cli

MODES = ("train", "eval_train", "eval_valid", "eval_test", "export")

config_flags.DEFINE_config_file(
    "config", None, "Experiment config: a file, e.g. configs/colorizer.py or "
    "configs/colorizer.py:tiny, or a preset, e.g. colorizer:tiny; override keys with "
    "--config.KEY=VALUE.", lock_config=True)
flags.DEFINE_enum("mode", "train", MODES, "What to do with the model in --logdir.")
flags.DEFINE_string("logdir", None, "Directory of checkpoints, summaries and the export.")
flags.DEFINE_enum("accelerator_type", "auto", ["auto", "CPU", "GPU", "TPU"],
                  "Hardware to run on; auto picks the local GPUs if any, else the CPU.")
flags.DEFINE_string("master", "", "TPU name or address (grpc://...) for TPUStrategy.")
flags.DEFINE_integer("devices_per_worker", 0,
                     "Devices to mirror over on this host: 0 = all GPUs (or one CPU); with "
                     "--accelerator_type=CPU, N > 1 splits the CPU into N logical devices.")
flags.DEFINE_integer("steps_per_summaries", 100,
                     "Train steps per compiled call; progress, summaries and the checkpoint "
                     "timer are checked between calls.")
flags.DEFINE_string("checkpoint", None,
                    "eval_* / export: evaluate this checkpoint only instead of following "
                    "--logdir: a training checkpoint (prefix or dir), an exported model dir, "
                    "an original ColTran checkpoint, or released[:STAGE] / a zip URL (the "
                    "released checkpoints, fetched once into the cache).")
flags.DEFINE_string("export_dir", None, "export: output directory (default LOGDIR/export).")
cli.define_training_flags()


def _report(line: str) -> None:
    print(line, flush=True)


def _train(config, logdir: str) -> None:
    from coltran_tf.train import trainer
    from coltran_tf.utils import distribute

    dist = distribute.get_strategy(flags.FLAGS.accelerator_type, flags.FLAGS.master,
                                   flags.FLAGS.devices_per_worker)
    os.makedirs(logdir, exist_ok=True)
    summary = trainer.train(config, logdir, dist, flags.FLAGS.steps_per_summaries,
                            report=_report,
                            resume_with_changes=flags.FLAGS.resume_with_changes)
    if summary["stopped_by"]:
        _report(f"Stopped by {summary['stopped_by']} at step {summary['step']}; run the "
                "same command again to resume.")


def _export(config, logdir: str) -> None:
    from coltran_tf.train import state

    train_state = state.build_train_state(config)
    source = flags.FLAGS.checkpoint or logdir
    if os.path.isdir(source):
        restored = state.restore_latest(train_state, source)
        if restored is None:
            raise app.UsageError(f"No training checkpoint in {source!r} to export.")
    else:
        train_state.checkpoint.restore(source).assert_existing_objects_matched()
        restored = source
    out = state.export_model(train_state, config,
                             flags.FLAGS.export_dir or state.default_export_dir(logdir),
                             {"checkpoint": str(restored)})
    _report(f"Exported the {state.export_kind(config).upper()} weights of step "
            f"{train_state.step} to {out}")


def _evaluate(config, logdir: str, split: str) -> None:
    from coltran_tf.checkpoints.released import resolve_checkpoint
    from coltran_tf.train import evaluator

    checkpoint = resolve_checkpoint(flags.FLAGS.checkpoint, config, _report)
    evaluator.evaluate(config, logdir, split, checkpoint, report=_report)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = flags.FLAGS.config
    if config is None:
        raise app.UsageError("--config is required, e.g. --config=colorizer:tiny.")
    if not flags.FLAGS.logdir:
        raise app.UsageError("--logdir is required (where checkpoints and summaries go).")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # progress lines are printed; -v 0 for INFO
    logdir = os.path.abspath(flags.FLAGS.logdir)
    mode = flags.FLAGS.mode
    # TensorFlow-heavy modules are imported only after the flags are parsed (fast --help).
    from coltran_tf.checkpoints.loading import StageError
    from coltran_tf.data.sources import DataError
    from coltran_tf.utils.download import FetchError

    cli.apply_deterministic_ops()
    try:
        if mode == "train":
            _train(config, logdir)
        elif mode == "export":
            _export(config, logdir)
        else:
            _evaluate(config, logdir, mode[len("eval_"):])
    except (DataError, FetchError, StageError, ValueError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    return 0


run = cli.entry_point(main, __name__, "coltran-train", expand=expand_config_flag,
                      required=["config"])


if __name__ == "__main__":
    sys.exit(run())
