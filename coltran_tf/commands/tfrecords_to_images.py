"""Turn generated TFRecords (the staged sampler's output) into PNG files.

  coltran-tfrecords-to-images --gen_dir=runs/stage3/samples --output_dir=pngs
  coltran-tfrecords-to-images --gen_dir=S3 --output_dir=pngs --split_samples
  coltran-tfrecords-to-images --gen_dir=S3 --output_dir=pngs --stage_dirs=S1,S2,S3 \\
      --config=colorizer:tiny --contact_sheet=sheet.png

The records say their image size and samples per record. PNG names carry the
record index and label: 00003_label17.png (or 00003_label17_s1.png per sample
with --split_samples). The contact sheet has one row per image: the grayscale
input and the ground truth (when --config names the dataset and split the
samples were drawn from), then each stage of --stage_dirs.
"""

import os
import sys

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from coltran_tf.configs import expand_config_flag
from coltran_tf.utils import cli

config_flags.DEFINE_config_file("config", None, "Optional experiment config (a preset such as "
                                "colorizer:tiny, or a file) whose dataset gave the samples: "
                                "adds grayscale and ground-truth columns to the contact sheet.")
flags.DEFINE_string("gen_dir", None, "Folder of gen<N>.tfrecords to turn into PNG files.")
flags.DEFINE_string("output_dir", None, "Where the PNG files go (created if needed).")
flags.DEFINE_integer("num_samples", None, "Samples per record, for records of the original "
                     "implementation (ours carry it).")
flags.DEFINE_bool("split_samples", False, "Write each sample as its own PNG.")
flags.DEFINE_list("stage_dirs", [], "Sample folders of the stages, in order, for the "
                  "contact sheet (default: --gen_dir).")
flags.DEFINE_string("contact_sheet", None, "Write a contact sheet PNG here.")
flags.DEFINE_enum("mode", "sample_test", ["sample_train", "sample_valid", "sample_test"],
                  "Split the samples came from (with --config).")


def _dataset_columns(config, count: int, mode: str):
    from coltran_tf.data import datasets, keys
    from coltran_tf.utils.image_ops import rgb_to_grayscale

    sample = config.sample
    data = datasets.get_dataset(config, mode[len("sample_"):], int(sample.batch_size),
                                training=False).unbatch()
    data = data.skip(int(sample.skip_batches) * int(sample.batch_size)).take(count)
    truth = [example[keys.targets()].numpy().astype(np.uint8) for example in data]
    gray = [np.asarray(rgb_to_grayscale(t.astype(np.int32)), np.uint8) for t in truth]
    return [gray, truth]


def _check(f) -> None:
    if not f.gen_dir or not f.output_dir:
        raise app.UsageError("--gen_dir and --output_dir are required.")
    for directory in [f.gen_dir, *f.stage_dirs]:
        if not os.path.isdir(directory):
            raise app.UsageError(f"{directory}: no such folder (a folder of gen<N>.tfrecords, "
                                 "the output of coltran-sample).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    _check(f)
    from coltran_tf.sampling import sheets
    from coltran_tf.sampling.records import GenDataError
    from coltran_tf.utils.images import save_png

    try:
        items = sheets.read_images(f.gen_dir, f.num_samples)
        paths = sheets.write_pngs(f.gen_dir, f.output_dir, f.num_samples, f.split_samples,
                                  items=items)
        print(f"Wrote {len(paths)} PNG files to {f.output_dir}", flush=True)
        if f.contact_sheet:
            stages = [[image for image, _ in (items if d == f.gen_dir else
                                              sheets.read_images(d))]
                      for d in (f.stage_dirs or [f.gen_dir])]
            count = min(len(stage) for stage in stages)
            columns = [stage[:count] for stage in stages]
            if f.config is not None:
                columns = _dataset_columns(f.config, count, f.mode) + columns
            save_png(sheets.contact_sheet(columns), f.contact_sheet)
            print(f"Wrote a contact sheet of {count} rows and {len(columns)} columns to "
                  f"{f.contact_sheet}")
    except (GenDataError, ValueError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    return 0


run = cli.entry_point(main, __name__, "coltran-tfrecords-to-images", expand=expand_config_flag)


if __name__ == "__main__":
    run()
