"""Generated TFRecords (the staged sampler's output) -> PNG files and a contact sheet.

  python tools/tfrecords_to_images.py --gen_dir=runs/spatial/samples --output_dir=pngs
  python tools/tfrecords_to_images.py --gen_dir=S3 --output_dir=pngs --num_samples=2 --split_samples
  python tools/tfrecords_to_images.py --gen_dir=S3 --output_dir=pngs \
      --stage_dirs=S1,S2,S3 --config=configs/colorizer.py:tiny --mode=sample_test \
      --contact_sheet=sheet.png

PNG names carry the record index and label: 00003_label17.png (or
00003_label17_s1.png per sample with --split_samples). The contact sheet has
one row per image: the grayscale input and the ground truth (when --config
names the dataset and split the samples were drawn from), then each stage.
"""

import _paths  # noqa: F401
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from coltran_tf.sampling import sheets
from coltran_tf.utils.images import save_png

config_flags.DEFINE_config_file("config", None, "Optional experiment config whose dataset "
                                "gave the samples (adds grayscale and ground-truth columns).")
flags.DEFINE_string("gen_dir", None, "Directory of gen<N>.tfrecords to turn into PNG files.")
flags.DEFINE_string("output_dir", None, "Where the PNG files go.")
flags.DEFINE_integer("num_samples", 1, "Samples per image (concatenated along the width).")
flags.DEFINE_bool("split_samples", False, "Write each sample as its own PNG.")
flags.DEFINE_list("stage_dirs", [], "Sample directories of the stages, in order, for the "
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


def main(argv):
    del argv
    if not flags.FLAGS.gen_dir or not flags.FLAGS.output_dir:
        raise app.UsageError("--gen_dir and --output_dir are required.")
    gen_dir = flags.FLAGS.gen_dir
    items = sheets.read_images(gen_dir, flags.FLAGS.num_samples)
    paths = sheets.write_pngs(gen_dir, flags.FLAGS.output_dir, flags.FLAGS.num_samples,
                              flags.FLAGS.split_samples, items=items)
    print(f"Wrote {len(paths)} PNG files to {flags.FLAGS.output_dir}")
    if flags.FLAGS.contact_sheet:
        stages = [[image for image, _ in (items if d == gen_dir else sheets.read_images(d))]
                  for d in (flags.FLAGS.stage_dirs or [gen_dir])]
        count = min(len(stage) for stage in stages)
        columns = [stage[:count] for stage in stages]
        if flags.FLAGS.config is not None:
            columns = _dataset_columns(flags.FLAGS.config, count, flags.FLAGS.mode) + columns
        save_png(sheets.contact_sheet(columns), flags.FLAGS.contact_sheet)
        print(f"Wrote a contact sheet of {count} rows and {len(columns)} columns to "
              f"{flags.FLAGS.contact_sheet}")


if __name__ == "__main__":
    app.run(main)
