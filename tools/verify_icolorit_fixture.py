r"""Verifies our iColoriT against outputs of the official implementation.

  python tools/verify_icolorit_fixture.py ../shared/fixtures/icolorit/tiny

FIXTURE_DIR holds model.json, state_dict.npz (official PyTorch layout, as
NumPy), inputs.npz and expected.npz. Builds the model from model.json (any
width, depth, heads, patch size), converts the state_dict, runs the official
forward on the inputs and prints the max abs difference to expected.npz.
Exits 0 within 1e-4, 1 above, 2 if the fixture can't be read.
"""

import sys

import _paths  # noqa: F401
from absl import app

from coltran_tf.icolorit.convert import WeightsError
from coltran_tf.icolorit.fixture_check import TOLERANCE, check_fixture


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("Usage: verify_icolorit_fixture.py FIXTURE_DIR")
    try:
        difference = check_fixture(argv[1])
    except (FileNotFoundError, ValueError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ok = difference <= TOLERANCE
    print(f"max abs difference to expected output: {difference:.3g} "
          f"({'ok' if ok else 'FAILED'}, tolerance {TOLERANCE:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    app.run(main)
