"""Exact resume: a run interrupted at a random step and rerun ends with the very
checkpoint of an uninterrupted run (weights, optimizer slots and step, EMA,
seed generators, data position), for both families; with dropout and
drop-path on, random crops, channels and hints, and an unreadable photo in the
data. The interruption is an exception raised from the progress report, after
the step's work and before its checkpoint, which loses that work as a kill
would (tools/resume_check.py does the same with SIGKILL in subprocesses)."""

import os
import random

import pytest
import tensorflow as tf

from coltran_tf.configs import get_preset
from coltran_tf.icolorit import training
from coltran_tf.train import loop, trainer
from coltran_tf.utils.checkpointing import differences
from conftest import REPO_ROOT


class Killed(Exception):
    pass


def _killer(step: int):
    """A progress report that dies when the run reports `step`."""
    def report(line):
        if line.startswith(f"step {step}/"):
            raise Killed(line)
    return report


def _photos(root):
    """Three bundled photos and an unreadable file (skipped, like in a real folder)."""
    root.mkdir()
    for name in ("chelsea.png", "coffee.png", "astronaut.png"):
        os.symlink(os.path.join(REPO_ROOT, "data", name), root / name)
    (root / "broken.png").write_bytes(b"\x89PNG but truncated")
    return str(root)


def _coltran_config(photos, module: str):
    config = get_preset(module, "tiny")
    config.downsample_res = 16
    if module == "spatial_upsampler":
        config.resolution = [32, 32]
    config.dataset, config.data.data_dir = "folder", photos
    config.data.valid_percent = config.data.test_percent = 0.0
    config.max_train_steps = 7
    config.save_checkpoint_secs = 0  # a checkpoint after every progress line
    # Dropout on: the seed generators' states must resume.
    for part in [config.model[p] for p in ("encoder", "decoder") if p in config.model] or \
            [config.model]:
        part.dropout = 0.2
    return config


def test_a_coltran_run_killed_at_a_random_step_resumes_bit_exactly(tmp_path):
    """The colour upsampler: dropout on, random crops and channels (the colorizer
    trains on the same loop and stream)."""
    config = _coltran_config(_photos(tmp_path / "photos"), "color_upsampler")
    quiet = lambda line: None  # noqa: E731
    trainer.train(config, str(tmp_path / "straight"), steps_per_summaries=2, report=quiet)
    kill = random.choice([4, 6])  # progress (then a checkpoint) every 2 steps
    with pytest.raises(Killed):
        trainer.train(config, str(tmp_path / "killed"), steps_per_summaries=2,
                      report=_killer(kill))
    lines = []
    trainer.train(config, str(tmp_path / "killed"), steps_per_summaries=2, report=lines.append)
    assert lines[0].startswith("Resuming from") and "of the data)" in lines[0], lines[0]
    assert differences(str(tmp_path / "straight"), str(tmp_path / "killed")) == {}, \
        f"killed at step {kill}"
    again = trainer.train(config, str(tmp_path / "killed"), report=quiet)
    assert again["step"] == again["start_step"] == 7 and not again["history"]  # nothing to do
    # What the checkpoint holds beyond weights, optimizer and EMA.
    names = dict(tf.train.list_variables(str(tmp_path / "straight")))
    assert sum(n.startswith("random/") for n in names) >= 4  # a seed generator per dropout
    reader = tf.train.load_checkpoint(str(tmp_path / "straight"))
    position = int(reader.get_tensor(next(n for n in names if n.startswith("stream/"))))
    # 7 steps of 2 examples from 3 readable photos an epoch: the fifth epoch has begun.
    assert position >> 32 == 14 // 3, hex(position)


def test_an_icolorit_run_killed_at_a_random_step_resumes_bit_exactly(tmp_path):
    config = get_preset("icolorit", "tiny")
    config.dataset, config.data.data_dir = "folder", _photos(tmp_path / "photos")
    config.data.valid_percent = config.data.test_percent = 0.0
    config.model.drop_path = 0.3
    config.max_train_steps, config.save_checkpoint_steps, config.steps_per_log = 7, 2, 1
    config.batch_size = 2
    training.train(config, str(tmp_path / "straight"), report=lambda line: None)
    kill = random.randint(3, 7)  # after the first checkpoint (step 2)
    with pytest.raises(Killed):
        training.train(config, str(tmp_path / "killed"), report=_killer(kill))
    lines = []
    training.train(config, str(tmp_path / "killed"), report=lines.append)
    assert lines[0].startswith("Resuming from") and "of the data)" in lines[0], lines[0]
    assert differences(str(tmp_path / "straight"), str(tmp_path / "killed")) == {}, \
        f"killed at step {kill}"


def test_a_resume_on_another_number_of_replicas_is_refused(tmp_path):
    (tmp_path / loop.REPLICAS_FILE).write_text('{"replicas": 2}')
    assert loop.check_replicas(str(tmp_path), 2) is None
    with pytest.raises(loop.ResumeMismatch, match="trained on 2 replica.*this run has 1"):
        loop.check_replicas(str(tmp_path), 1)
    assert loop.check_replicas(str(tmp_path), 1, allow_changes=True) == "replicas: 2 -> 1"
