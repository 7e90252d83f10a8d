"""Both training loops write through one chief/worker split: in a multi-worker
run only the chief's checkpoints, config, log and exported model are kept
(utils/checkpointing.py); before, every iColoriT worker wrote into the logdir."""

import os

import pytest

from coltran_tf.configs import get_preset
from coltran_tf.icolorit import training
from coltran_tf.utils import checkpointing


def _tiny_icolorit(steps: int = 2):
    config = get_preset("icolorit", "tiny")
    config.max_train_steps = steps
    config.save_checkpoint_steps = 1
    config.steps_per_log = 1
    return config


@pytest.mark.parametrize("chief", [True, False], ids=["chief", "worker"])
def test_only_the_chief_writes_an_icolorit_runs_files(tmp_path, monkeypatch, chief):
    monkeypatch.setattr(checkpointing, "is_chief", lambda strategy: chief)
    monkeypatch.setattr(checkpointing, "task_id", lambda strategy: 0 if chief else 1)
    logdir = str(tmp_path / "run")
    training.train(_tiny_icolorit(), logdir)
    written = sorted(os.listdir(logdir))
    if chief:
        assert "checkpoint" in written and "config.json" in written and "model" in written
        assert "log.jsonl" in written and any(n.startswith("ckpt-2") for n in written)
    else:  # a worker wrote its checkpoints to scratch, then removed them
        assert written == [], written


def test_the_coltran_trainer_uses_the_same_saver():
    from coltran_tf.train import trainer

    assert trainer.ChiefSaver is checkpointing.ChiefSaver
