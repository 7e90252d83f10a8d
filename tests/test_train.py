"""Trainer, evaluator and export, in this process on tiny configs and the bundled
photographs (the command itself: test_train_command.py)."""

import json
import os
import signal
import time

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from coltran_tf.checkpoints import loading
from coltran_tf.checkpoints.convert import load_reference_model
from coltran_tf.checkpoints.native import load_model_dir
from coltran_tf.data import datasets
from coltran_tf.train import evaluator, optimizers, trainer
from coltran_tf.train import state as state_lib
from configs import color_upsampler, colorizer, spatial_upsampler
from conftest import REPO_ROOT, require_fixtures

TRAIN_LOG = trainer.TRAIN_LOG


def _tiny(module, **overrides):
    """The tiny preset on 16x16 inputs (64x64 for the spatial upsampler): the same
    code paths as 64 and 256 px, at a fraction of the attention's cost."""
    config = module.get_config("tiny")
    config.downsample_res = 16
    if module is spatial_upsampler:
        config.resolution = [64, 64]
    for key, value in overrides.items():
        config[key] = value
    return config


def _read_log(logdir):
    with open(os.path.join(logdir, TRAIN_LOG)) as f:
        return [json.loads(line) for line in f]


# -- in-process training --------------------------------------------------------


@pytest.mark.parametrize("module,steps", [(colorizer, 40), (color_upsampler, 40),
                                          (spatial_upsampler, 80)])
def test_tiny_configs_train_with_decreasing_loss(tmp_path, module, steps):
    """Two bundled photos (so that 40 steps are enough to fit them, whatever
    else data/ holds); the whole bundled set is read in test_data."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        os.symlink(os.path.join(REPO_ROOT, "data", name), photos / name)
    config = _tiny(module, max_train_steps=steps)
    config.dataset, config.data.data_dir = "folder", str(photos)
    config.data.valid_percent = config.data.test_percent = 0.0
    config.optimizer.learning_rate = 1e-3
    lines = []
    logdir = tmp_path / "run"
    summary = trainer.train(config, str(logdir), steps_per_summaries=10, report=lines.append)
    losses = [record["loss_bits_per_dim"] for _, record in summary["history"]]
    assert summary["step"] == steps and len(losses) == steps // 10
    assert losses[-1] < losses[0] - 0.2 and min(losses) == losses[-1], losses
    assert [r["step"] for r in _read_log(str(logdir))] == list(range(10, steps + 1, 10))
    assert any("steps/s" in line and "ETA" in line and "bits/dim" in line for line in lines)
    assert tf.train.latest_checkpoint(str(logdir)).endswith(f"ckpt-{steps}")
    assert os.listdir(logdir / "train")  # TensorBoard event file


def test_export_holds_the_ema_weights_and_loads_for_inference(tmp_path):
    config = _tiny(color_upsampler, max_train_steps=3)
    summary = trainer.train(config, str(tmp_path), steps_per_summaries=3,
                            report=lambda line: None)
    train_state = state_lib.build_train_state(config)
    state_lib.restore_latest(train_state, str(tmp_path))
    model, loaded_config = load_model_dir(summary["export_dir"])
    assert loaded_config.to_dict() == config.to_dict()
    for exported, shadow in zip(model.trainable_variables, train_state.ema.shadows):
        np.testing.assert_array_equal(exported, shadow)
    assert any(not np.array_equal(e, r) for e, r in zip(model.trainable_variables,
                                                        train_state.model.trainable_variables))
    # The logdir itself (config.json + checkpoints) also serves as a stage's model.
    staged_model, _, description = loading.load_model(str(tmp_path), stage="color_upsampler")
    assert description.startswith("training checkpoint")
    for loaded, shadow in zip(staged_model.trainable_variables, train_state.ema.shadows):
        np.testing.assert_array_equal(loaded, shadow)
    with pytest.raises(loading.StageError, match="holds a color_upsampler model"):
        loading.load_model(str(tmp_path), stage="colorizer")
    # export_weights="raw" (the demo configs) exports the trained weights instead.
    config.export_weights = "raw"
    raw_dir = state_lib.export_model(train_state, config, str(tmp_path / "raw"))
    raw_model, _ = load_model_dir(raw_dir)
    for exported, raw in zip(raw_model.trainable_variables, train_state.model.trainable_variables):
        np.testing.assert_array_equal(exported, raw)
    config.export_weights = "median"
    with pytest.raises(ValueError, match="export_weights='median'"):
        state_lib.export_model(train_state, config, str(tmp_path / "bad"))


# -- optimizer and Polyak averaging ---------------------------------------------


def test_rmsprop_is_the_keras2_update_and_ema_the_tf_train_average():
    var = tf.Variable([1.0, -2.0, 3.0])
    import keras

    kvar = keras.Variable(np.array([1.0, -2.0, 3.0], np.float32))
    opt = optimizers.OriginalRMSprop(learning_rate=0.1)
    opt.build([kvar])
    ema = optimizers.PolyakAverage([kvar], decay=0.9)
    ms, value, shadow = np.zeros(3), np.array([1.0, -2.0, 3.0]), np.array([1.0, -2.0, 3.0])
    for grad in ([0.5, -1.0, 2.0], [0.1, 0.2, -0.3]):
        opt.apply_gradients([(tf.constant(grad), kvar)])
        ema.update()
        ms = 0.9 * ms + 0.1 * np.square(grad)
        value = value - 0.1 * np.asarray(grad) / (np.sqrt(ms) + 1e-7)
        shadow = 0.9 * shadow + 0.1 * value
    np.testing.assert_allclose(kvar.numpy(), value, rtol=1e-6)
    np.testing.assert_allclose(ema.shadows[0].numpy(), shadow, rtol=1e-6)
    del var
    with pytest.raises(ValueError, match="rmsprop"):
        optimizers.build_optimizer(ml_collections.ConfigDict({"type": "sgd",
                                                              "learning_rate": 1.0}))


# -- evaluation -----------------------------------------------------------------


def test_eval_follows_checkpoints_and_writes_results(tmp_path):
    config = _tiny(colorizer, max_train_steps=2)
    trainer.train(config, str(tmp_path), steps_per_summaries=2, report=lambda line: None)
    config.eval_num_examples = 5
    lines = []
    results = evaluator.evaluate(config, str(tmp_path), "valid", report=lines.append)
    assert [r["step"] for r in results] == [2] and results[0]["num_examples"] == 5
    assert 5.0 < results[0]["loss_bits_per_dim"] < 10.0
    assert "encoder_loss_bits_per_dim" in results[0]
    with open(tmp_path / "eval_valid" / evaluator.RESULTS_FILE) as f:
        assert json.loads(f.readline())["step"] == 2
    assert any(line.startswith("eval_valid step 2:") for line in lines)


def test_eval_of_an_original_checkpoint_equals_the_converted_model(tmp_path):
    path = os.path.join(require_fixtures("tiny", "coltran_core"), "ckpt")
    with open(os.path.join(os.path.dirname(path), "layout.json")) as f:
        original = json.load(f)["config"]
    config = colorizer.get_config("tiny")  # the fixture's 64 px, not _tiny's 16
    config.model = ml_collections.ConfigDict(original["model"])
    config.eval_num_examples, config.eval_batch_size = 3, 2
    (result,) = evaluator.evaluate(config, str(tmp_path), "test", checkpoint=path,
                                   report=lambda line: None)
    assert "original ColTran checkpoint" in result["checkpoint"]
    model, _ = load_reference_model(config, path)
    dataset = datasets.get_dataset(config, "test", 2, training=False, num_examples=3)
    expected = evaluator.bits_per_dim(model, dataset)
    assert result["num_examples"] == 3
    np.testing.assert_allclose(result["loss_bits_per_dim"], expected["loss_bits_per_dim"],
                               rtol=1e-6)


def test_resuming_with_another_model_is_refused_and_keeps_the_checkpoint(tmp_path):
    trainer.train(_tiny(color_upsampler, max_train_steps=1), str(tmp_path), steps_per_summaries=1,
                  report=lambda line: None)
    before = sorted(os.listdir(tmp_path))
    config = _tiny(color_upsampler, max_train_steps=2)
    config.model.hidden_size = config.model.ff_size = 16
    with pytest.raises(state_lib.CheckpointMismatch, match="another --logdir"):
        trainer.train(config, str(tmp_path), report=lambda line: None)
    assert sorted(os.listdir(tmp_path)) == before


def test_eval_refuses_a_checkpoint_of_another_model(tmp_path):
    trainer.train(_tiny(color_upsampler, max_train_steps=1), str(tmp_path), steps_per_summaries=1,
                  report=lambda line: None)
    config = _tiny(color_upsampler)
    config.model.num_encoder_layers = 2
    with pytest.raises(state_lib.CheckpointMismatch, match="config it was trained with"):
        evaluator.evaluate(config, str(tmp_path / "eval"), "valid",
                           checkpoint=str(tmp_path), report=lambda line: None)


def test_xla_train_step_matches_the_plain_one(tmp_path):
    plain = trainer.train(_tiny(color_upsampler, max_train_steps=2), str(tmp_path / "plain"),
                          steps_per_summaries=1, report=lambda line: None)
    xla = trainer.train(_tiny(color_upsampler, max_train_steps=2, jit_compile=True),
                        str(tmp_path / "xla"), steps_per_summaries=1, report=lambda line: None)
    for (step_a, a), (step_b, b) in zip(plain["history"], xla["history"]):
        assert step_a == step_b
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_graceful_stop_turns_signals_into_a_request(signum):
    from coltran_tf.utils.progress import GracefulStop

    previous = signal.getsignal(signum)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signum)
        time.sleep(0.1)
        assert stop.requested == signal.Signals(signum).name
    assert signal.getsignal(signum) is previous
