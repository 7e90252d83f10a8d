"""Check a folder of generated samples (the staged sampler's TFRecords).

  coltran-check-gen-dir runs/stage1/samples
  coltran-check-gen-dir runs/stage3/samples --expected_records=200

Prints the records per gen<N>.tfrecords shard, the image size and samples per
record (read from the records themselves), and lists problems: missing or
duplicate shards, leftovers of an interrupted write, records of another size,
values outside 0..255, missing labels, a total other than expected.
Exits 0 when the folder is fine, 1 when it has problems, 2 when it is not a
folder of generated records.
"""

import os
import sys

from absl import app, flags

from coltran_tf.utils import cli

flags.DEFINE_integer("expected_records", None, "Total number of records there should be.")
flags.DEFINE_integer("num_samples", None, "Samples per record, for records of the original "
                     "implementation (ours carry it).")


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("Give exactly one folder: coltran-check-gen-dir GEN_DIR.")
    if not os.path.isdir(argv[1]):
        raise app.UsageError(f"{argv[1]}: no such folder (a folder of gen<N>.tfrecords, the "
                             "output of coltran-sample).")
    from coltran_tf.sampling.records import GenDataError, check_gen_dir

    try:
        lines, problems = check_gen_dir(argv[1], num_samples=flags.FLAGS.num_samples,
                                        expected_records=flags.FLAGS.expected_records)
    except GenDataError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


run = cli.entry_point(main, __name__, "coltran-check-gen-dir")


if __name__ == "__main__":
    run()
