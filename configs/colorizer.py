"""ColTran core (the autoregressive colorizer), the paper's experiment.

  coltran-train --config=configs/colorizer.py --mode=train --logdir=DIR

Builds on the package's preset (coltran_tf/configs/colorizer.py, also
reachable as --config=colorizer). Variants after a colon: tiny, demo,
baseline (ColTran-B), e.g. configs/colorizer.py:tiny,baseline. Copy this file
to start an experiment of your own and change what differs.
"""

from coltran_tf.configs import get_preset


def get_config(arg: str | None = None):
    return get_preset("colorizer", arg or "")
