"""Trainer, evaluator, export and the `coltran-train` command.

Tests train tiny configs on the bundled photographs in this process (the
command through run_command); subprocesses only where the process is what is
tested: SIGTERM, splitting the CPU into logical devices and multi-worker
collectives (set up before TensorFlow starts).
"""

import json
import os
import signal
import socket
import subprocess
import sys
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
from conftest import REPO_ROOT, require_fixtures, run_command

TRAIN_LOG = trainer.TRAIN_LOG


def _tiny(module, **overrides):
    config = module.get_config("tiny")
    if module is spatial_upsampler:
        config.resolution = [64, 64]  # keeps the 256x256 attention out of the tests
        config.downsample_res = 16
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


def test_resume_continues_to_the_same_step_count_as_an_uninterrupted_run(tmp_path):
    straight = _tiny(colorizer, max_train_steps=8)
    full = trainer.train(straight, str(tmp_path / "straight"), steps_per_summaries=4,
                         report=lambda line: None)
    first = trainer.train(_tiny(colorizer, max_train_steps=4), str(tmp_path / "resumed"),
                          steps_per_summaries=4, report=lambda line: None)
    saved = state_lib.build_train_state(straight)
    state_lib.restore_latest(saved, str(tmp_path / "resumed"))
    lines = []
    second = trainer.train(_tiny(colorizer, max_train_steps=8), str(tmp_path / "resumed"),
                           steps_per_summaries=4, report=lines.append)
    assert (first["step"], second["start_step"], second["step"]) == (4, 4, 8) == (4, 4,
                                                                                full["step"])
    assert lines[0].startswith("Resuming from") and "ckpt-4" in lines[0]
    # Restore brought back weights, optimizer slots and EMA, not a fresh model.
    fresh = state_lib.build_train_state(straight)
    assert saved.step == 4
    for restored, initial in ((saved.model.trainable_variables, fresh.model.trainable_variables),
                              (saved.ema.shadows, fresh.ema.shadows),
                              (saved.optimizer.variables[1:], fresh.optimizer.variables[1:])):
        assert any(not np.array_equal(a, b) for a, b in zip(restored, initial))
    again = trainer.train(_tiny(colorizer, max_train_steps=8), str(tmp_path / "resumed"),
                          report=lambda line: None)
    assert again["step"] == 8 and not again["history"]  # nothing left to do


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
    config = _tiny(colorizer)
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


# -- the command, signals and tf.distribute ---------------------------------------


def _command(config, logdir, *extra):
    return [sys.executable, "-m", "coltran_tf.run", f"--config={config}", f"--logdir={logdir}",
            *extra]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO_ROOT)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _run(args, **env):
    result = subprocess.run(args, cwd=REPO_ROOT, env=_env(**env), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _train(config, logdir, *extra):
    """`coltran-train` in this process; its output."""
    result = run_command("coltran_tf.run", f"--config={config}", f"--logdir={logdir}", *extra)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_sigterm_checkpoints_and_a_rerun_resumes(tmp_path):
    logdir = tmp_path / "run"
    proc = subprocess.Popen(
        _command("configs/colorizer.py:tiny", logdir, "--steps_per_summaries=2",
                 "--config.max_train_steps=100000"),
        cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in proc.stdout:
        output.append(line)
        if line.startswith("step "):
            proc.send_signal(signal.SIGTERM)
            break
    output += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 0, "".join(output)
    text = "".join(output)
    assert "stopping on SIGTERM" in text and "run the same command again" in text
    step = int(tf.train.latest_checkpoint(str(logdir)).rsplit("-", 1)[1])
    assert 2 <= step < 100000
    out = _train("colorizer:tiny", logdir, "--steps_per_summaries=2",
                 f"--config.max_train_steps={step + 2}")
    assert f"Resuming from {logdir}/ckpt-{step} at step {step}" in out
    assert f"step {step + 2}/{step + 2}" in out


DIST_ARGS = ("--steps_per_summaries=1", "--config.max_train_steps=3", "--config.batch_size=2",
             "--accelerator_type=CPU")


@pytest.fixture(scope="module")
def one_device_log(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("one_device")
    _train("colorizer:tiny", logdir, *DIST_ARGS)
    return _read_log(str(logdir))


def _assert_same_losses(log, reference):
    assert [r["step"] for r in log] == [r["step"] for r in reference] == [1, 2, 3]
    for got, want in zip(log, reference):
        for name in ("loss", "loss_bits_per_dim", "encoder_loss_bits_per_dim"):
            np.testing.assert_allclose(got[name], want[name], rtol=2e-5, err_msg=name)


def test_mirrored_over_two_cpu_devices_matches_one_device(tmp_path, one_device_log):
    out = _run(_command("configs/colorizer.py:tiny", tmp_path, *DIST_ARGS,
                        "--devices_per_worker=2"))
    assert "2 replica(s)" in out
    _assert_same_losses(_read_log(str(tmp_path)), one_device_log)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_with_two_processes_matches_one_device(tmp_path, one_device_log):
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers},
                                "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            _command("configs/colorizer.py:tiny", tmp_path, *DIST_ARGS), cwd=REPO_ROOT,
            env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-4000:]
    assert "2 replica(s)" in outputs[0]
    _assert_same_losses(_read_log(str(tmp_path)), one_device_log)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")
    assert not any(name.startswith(".worker") for name in os.listdir(tmp_path))


def test_command_reports_config_mistakes(tmp_path, monkeypatch):
    result = run_command("coltran_tf.run", "--config=configs/colorizer.py:tiny",
                         f"--logdir={tmp_path}", "--config.no_such_key=1")
    assert result.returncode != 0 and "no_such_key" in result.stderr
    result = run_command("coltran_tf.run", "--config=colorizer:tiny", f"--logdir={tmp_path}",
                         "--config.dataset=folder",
                         f"--config.data.data_dir={tmp_path / 'missing'}")
    assert result.returncode == 2 and "missing" in result.stderr
    assert "--config.data.data_dir" in result.stderr
    # A released-weights URL that cannot be fetched.
    monkeypatch.setenv("COLTRAN_TF_HOME", str(tmp_path / "cache"))
    result = run_command("coltran_tf.run", "--config=colorizer:tiny", f"--logdir={tmp_path}",
                         "--mode=eval_test", "--checkpoint=http://127.0.0.1:9/coltran.zip")
    assert result.returncode == 2
    assert "cannot reach http://127.0.0.1:9/coltran.zip" in result.stderr
    assert "--checkpoints=DIR" in result.stderr


def test_benchmark_train_reports_steps_per_second(tmp_path):
    out = _run([sys.executable, "tools/benchmark_train.py", "--configs=color_upsampler",
                "--variants=tiny", "--steps=2", "--noxla"])
    line = next(x for x in out.splitlines() if x.startswith("color_upsampler:tiny"))
    batch, steps_per_sec, examples_per_sec = line.split()[1:4]
    assert int(batch) == 2 and float(steps_per_sec) > 0
    np.testing.assert_allclose(float(examples_per_sec), 2 * float(steps_per_sec), rtol=0.02)


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
