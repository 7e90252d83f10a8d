"""Validates a directory of generated samples (the staged sampler's TFRecords).

  python tools/check_gen_dir.py LOGDIR/samples --resolution=64 --num_samples=1 \
      --expected_records=200

Prints the records per gen<N>.tfrecords shard and lists problems: missing or
duplicate shards, leftovers of an interrupted write, records of the wrong
size, values outside 0..255, missing labels, a total other than expected.
Exits 1 when there is a problem, 0 otherwise.
"""


import _paths  # noqa: F401
from absl import app, flags

from coltran_tf.sampling.records import GenDataError, check_gen_dir

flags.DEFINE_integer("resolution", 64, "Height of the stored images (64 for the colorizer "
                     "and color upsampler, 256 for the spatial upsampler).")
flags.DEFINE_integer("num_samples", 1, "Samples per image, concatenated along the width.")
flags.DEFINE_integer("expected_records", None, "Total number of records there should be.")


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("Give exactly one directory: check_gen_dir.py DIR [flags].")
    try:
        lines, problems = check_gen_dir(argv[1], flags.FLAGS.resolution,
                                        flags.FLAGS.num_samples, flags.FLAGS.expected_records)
    except GenDataError as error:
        print(f"ERROR: {error}")
        return 1
    print("\n".join(lines))
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    app.run(main)
