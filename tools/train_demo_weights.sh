#!/usr/bin/env bash
# Trains the bundled demo weights from scratch on data/'s colour photos and
# packages them into coltran_tf/demo/ (about 2.5 hours on 2 CPU cores).
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
# iColoriT learns to follow hints from images whose colours grey levels do not tell
# (coltran_tf/demo/README.md); china.jpg and rocket.jpg are held out for measuring.
# 3000 steps on 3000 images (20% photos, 40% recoloured, 40% scenes), then 800 steps
# on 1500 images with more photos (60/25/15), then 1200 steps on photos alone, which
# give the hint-free colouring back its colours while the hints keep working.
# (--resume_with_changes on all three: a rerun after a later phase began passes
# through the earlier ones, whose data folders differ.)
python tools/make_hint_training_set.py --out="$runs/icolorit_data"
python -m coltran_tf.commands.icolorit_train --config=configs/icolorit.py:demo --logdir="$runs/icolorit" \
    --config.dataset=folder --config.data.data_dir="$runs/icolorit_data" \
    --config.data.valid_percent=0 --config.data.test_percent=0 --resume_with_changes
python tools/make_hint_training_set.py --out="$runs/icolorit_data_photos" --count=1500 --seed=1 \
    --shares=0.6,0.25,0.15
python -m coltran_tf.commands.icolorit_train --config=configs/icolorit.py:demo --logdir="$runs/icolorit" \
    --config.dataset=folder --config.data.data_dir="$runs/icolorit_data_photos" \
    --config.data.valid_percent=0 --config.data.test_percent=0 --config.max_train_steps=3800 \
    --config.learning_rate=2e-3 --config.warmup_steps=0 --resume_with_changes
python tools/make_hint_training_set.py --out="$runs/icolorit_data_photos_only" --count=1000 \
    --seed=2 --shares=1,0,0
python -m coltran_tf.commands.icolorit_train --config=configs/icolorit.py:demo --logdir="$runs/icolorit" \
    --config.dataset=folder --config.data.data_dir="$runs/icolorit_data_photos_only" \
    --config.data.valid_percent=0 --config.data.test_percent=0 --config.max_train_steps=5000 \
    --config.learning_rate=2e-3 --config.warmup_steps=0 --resume_with_changes
python tools/package_demo_weights.py --runs="$runs" --out=coltran_tf/demo
