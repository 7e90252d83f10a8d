r"""Verifies coltran_tf against outputs of the original ColTran implementation.

  python tools/verify_reference_fixture.py ../shared/fixtures/reference/tiny
  python tools/verify_reference_fixture.py --sampler=cached ../shared/fixtures/reference/tiny

For every model folder of FIXTURE_DIR (layout.json, ckpt/, inputs.npz,
expected.npz): builds our model from the fixture's own config, converts its
checkpoint (raw and EMA) through the converter into our format, and recomputes
every array of expected.npz: logits and losses, the parallel head, the three
samplers in argmax mode (the colorizer's in reference-compatible mode). Prints
one line per array with its max abs difference (or number of differing pixels).
--sampler picks the colorizer sampler: "loop" (the original algorithm) or
"cached" (the fast one), both in their reference-compatible mode.
Exits 1 if logits/probabilities differ by more than 1e-4, a loss by more than
1e-4 bits, or any argmax/sample pixel differs; 2 if the fixture can't be read.
"""

import sys

import _paths  # noqa: F401
from absl import app, flags

from coltran_tf.sampling.fixture_check import SAMPLERS, verify_fixture_dir

flags.DEFINE_enum("sampler", "loop", list(SAMPLERS), "Colorizer sampler for the sample_* "
                  "arrays: the original algorithm ('loop') or the cached one.")


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("Usage: verify_reference_fixture.py FIXTURE_DIR")
    try:
        results = verify_fixture_dir(argv[1], sampler=flags.FLAGS.sampler)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
