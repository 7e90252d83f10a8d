#!/usr/bin/env bash
# Trains the bundled demo weights from scratch on data/'s colour photos and
# packages them into coltran_tf/demo/ (about 80 minutes on 2 CPU cores).
#
#   bash tools/train_demo_weights.sh [RUNS_DIR]      # default runs/demo
#
# Each step resumes if interrupted (run the same command again).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/demo}
export TF_CPP_MIN_LOG_LEVEL=3
python -m coltran_tf.commands.train --config=configs/colorizer.py:demo --mode=train \
    --logdir="$runs/colorizer" --config.jit_compile=True --steps_per_summaries=50
python -m coltran_tf.commands.train --config=configs/color_upsampler.py:demo --mode=train \
    --logdir="$runs/color_upsampler" --config.jit_compile=True --steps_per_summaries=50
python -m coltran_tf.commands.train --config=configs/spatial_upsampler.py:demo --mode=train \
    --logdir="$runs/spatial_upsampler" --steps_per_summaries=25
python -m coltran_tf.commands.icolorit_train --config=configs/icolorit.py:demo --logdir="$runs/icolorit"
python tools/package_demo_weights.py --runs="$runs" --out=coltran_tf/demo
