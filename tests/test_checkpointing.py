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


def test_both_families_train_on_the_one_loop_and_its_saver():
    from coltran_tf.train import loop, trainer

    assert trainer.loop is loop and training.loop is loop
    assert loop.ChiefSaver is checkpointing.ChiefSaver


def _counter_task(tmp_path, losses, **extra):
    """A Task of no model family: a step counter, the given losses per chunk."""
    import tensorflow as tf

    from coltran_tf.train import loop

    step = tf.Variable(0, dtype=tf.int64)
    values = iter(losses)

    def run_steps(iterator, steps):
        step.assign_add(steps)
        return {"loss": next(values)}

    return loop.Task(checkpoint=tf.train.Checkpoint(step=step),
                     current_step=lambda: int(step.numpy()), run_steps=run_steps,
                     dataset=lambda start: tf.data.Dataset.range(10**6),
                     describe=lambda losses: f"loss {losses['loss']:.3f}",
                     mismatch=lambda path, error: ValueError(path), **extra)


def test_the_loop_chunks_saves_by_steps_logs_and_stops_on_a_nonfinite_loss(tmp_path):
    import tensorflow as tf

    from coltran_tf.train import loop

    lines, exported = [], []
    task = _counter_task(tmp_path, [1.0, 0.5, 0.25], export=lambda: exported.append(1) or "x")
    summary = loop.run(task, str(tmp_path), 7, tf.distribute.get_strategy(), batch_size=2,
                       steps_per_log=3, keep=5, save_every_steps=4, report=lines.append)
    # Chunks end at log and save boundaries: 3, 4 (a save), 7 (the end).
    assert [s for s, _ in summary["history"]] == [3, 4, 7] and exported == [1]
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".index")) == \
        ["ckpt-4.index", "ckpt-7.index"]
    assert any("examples/s" in line and "ETA" in line for line in lines)
    again = loop.run(_counter_task(tmp_path, []), str(tmp_path), 7, tf.distribute.get_strategy(),
                     batch_size=2, steps_per_log=3, keep=5, report=lines.append)
    assert again["start_step"] == 7 and "Nothing to do" in lines[-1]  # resumed at the end
    bad = _counter_task(tmp_path / "nan", [float("nan")], nonfinite_hint="lower the rate")
    with pytest.raises(FloatingPointError, match="loss became nan by step 2; lower the rate"):
        loop.run(bad, str(tmp_path / "nan"), 4, tf.distribute.get_strategy(), batch_size=1,
                 steps_per_log=2, keep=1, report=lines.append)


def test_a_resume_with_a_changed_setting_is_refused_naming_it(tmp_path):
    """The settings that decide which examples the steps see must not change at a
    resume, unless the user says so."""
    import json

    import tensorflow as tf

    from coltran_tf.train import loop

    def task(batch_size, losses):
        config = {"batch_size": batch_size, "data": {"data_dir": "/data"}, "seed": 0}
        return _counter_task(tmp_path, losses, config=config,
                             resume_keys=("batch_size", "data.data_dir", "seed"),
                             prepare=lambda: (tmp_path / "config.json").write_text(
                                 json.dumps(config)))

    strategy = tf.distribute.get_strategy()
    loop.run(task(4, [1.0]), str(tmp_path), 2, strategy, batch_size=4, steps_per_log=2, keep=2,
             report=lambda line: None)
    with pytest.raises(loop.ResumeMismatch, match=r"config.batch_size: 4 -> 8.*"
                                                  r"--resume_with_changes"):
        loop.run(task(8, [1.0]), str(tmp_path), 4, strategy, batch_size=8, steps_per_log=2,
                 keep=2, report=lambda line: None)
    lines = []
    summary = loop.run(task(8, [0.5]), str(tmp_path), 4, strategy, batch_size=8,
                       steps_per_log=2, keep=2, report=lines.append, allow_changes=True)
    assert summary["step"] == 4 and any("config.batch_size: 4 -> 8" in line for line in lines)


def test_the_train_command_refuses_a_resume_with_another_batch_size(tmp_path):
    from conftest import run_command

    common = ("--config=colorizer:tiny", f"--logdir={tmp_path}", "--config.max_train_steps=1",
              "--steps_per_summaries=1")
    assert run_command("coltran_tf.commands.train", *common).returncode == 0
    again = run_command("coltran_tf.commands.train", *common[:2], "--config.max_train_steps=2",
                        "--config.batch_size=3")
    assert again.returncode == 2 and "config.batch_size: 2 -> 3" in again.stderr
    assert "--resume_with_changes" in again.stderr


def test_resume_check_compares_every_variable_of_two_runs(tmp_path):
    """tools/resume_check.py's verdict: 0 for equal checkpoints, the largest
    difference otherwise."""
    import resume_check  # tools/ (conftest puts it on the path)
    import tensorflow as tf

    for name, value in (("a", 1.0), ("b", 1.0), ("c", 1.5)):
        weights = tf.Variable([0.0, value])
        tf.train.Checkpoint(w=weights, step=tf.Variable(3)).save(str(tmp_path / name / "ckpt"))
    assert resume_check.compare(str(tmp_path / "a"), str(tmp_path / "b"))[0] == 0.0
    assert resume_check.compare(str(tmp_path / "a"), str(tmp_path / "c"))[0] == 0.5
