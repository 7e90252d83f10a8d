"""Evaluate iColoriT on folders of photos with fixed hint files (official protocol).

  icolorit-evaluate --weights=W --data_dirs=ctest10k,flowers \
      --hint_root=hints --store_dir=results

(`python -m coltran_tf.commands.icolorit_evaluate` is the same command.)

For each data dir D: images in D/imgs/ (official layout) or D itself; hints in
<hint_root>/<basename of D>/h2-n<N>/<stem>.txt (row col per line); prints and
writes <store_dir>/<basename of D>/results.md and results.json (PSNR, B-PSNR,
PEV per N; LPIPS with --lpips_weights, exported from the `lpips` package by
the user since nothing is downloaded). --make_hints first writes missing hint
files like the official generator (seed 1234).
"""

import os
import sys

from absl import app, flags

from coltran_tf.utils import cli, precision

flags.DEFINE_string("weights", "demo", "iColoriT weights: demo (the bundled ones), a .npz/"
                    ".pth state_dict, a URL of one, or our model dir.")
flags.DEFINE_list("data_dirs", None, "Folders of photos (each: imgs/ or images directly).")
flags.DEFINE_string("hint_root", None, "Root of the hint folders (one sub-folder per data dir).")
flags.DEFINE_list("counts", ["0", "1", "2", "5", "10", "20", "50", "100", "200"],
                  "Hint counts N.")
flags.DEFINE_string("store_dir", "icolorit_eval", "Results (and predictions) go here.")
flags.DEFINE_bool("make_hints", False, "Write missing hint files (seed 1234) first.")
flags.DEFINE_bool("save_predictions", False, "Also save every prediction as PNG.")
flags.DEFINE_integer("batch_size", 16, "Images per forward pass.")
flags.DEFINE_enum("precision", "float32", list(precision.CHOICES), precision.HELP)
flags.DEFINE_string("lpips_weights", None, "Adds LPIPS: an .npz of lpips.LPIPS(net='vgg')"
                    ".state_dict() (see coltran_tf/icolorit/lpips.py).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from coltran_tf.data.sources import DataError, list_image_files
    from coltran_tf.icolorit.convert import WeightsError, load_icolorit
    from coltran_tf.icolorit.evaluation import (
        EvaluationError,
        evaluate_folder,
        image_dir,
        write_results,
    )
    from coltran_tf.icolorit.hints import make_hint_files
    from coltran_tf.icolorit.lpips import LPIPS

    f = flags.FLAGS
    if not (f.data_dirs and f.hint_root):
        raise app.UsageError("--data_dirs and --hint_root are required.")
    for directory in f.data_dirs:
        if not os.path.isdir(directory):
            raise app.UsageError(f"--data_dirs: {directory} is not a folder.")
    counts = [int(c) for c in f.counts]
    try:
        model = load_icolorit(f.weights, precision=f.precision)
        lpips = LPIPS.from_file(f.lpips_weights) if f.lpips_weights else None
        for data_dir in f.data_dirs:
            name = os.path.basename(os.path.normpath(data_dir))
            hint_dir = os.path.join(f.hint_root, name)
            if f.make_hints:
                stems = [os.path.splitext(p)[0] for p in list_image_files(image_dir(data_dir))]
                written = make_hint_files(hint_dir, stems, counts)
                print(f"{hint_dir}: {written} hint files written")
            out = os.path.join(f.store_dir, name)
            results = evaluate_folder(model, data_dir, hint_dir, counts, f.batch_size,
                                      out if f.save_predictions else None, lpips)
            print(write_results(results, name, out))
    except (WeightsError, EvaluationError, DataError, OSError, ValueError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    return 0


run = cli.entry_point(main, __name__, "icolorit-evaluate")


if __name__ == "__main__":
    run()
