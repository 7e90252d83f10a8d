"""The `coltran-train` command: SIGTERM, data parallelism over two CPU devices and
over two worker processes, config mistakes.

Subprocesses only where the process is what is tested: SIGTERM, splitting the
CPU into logical devices and multi-worker collectives (set up before
TensorFlow starts); the rest runs the command in this process (run_command).
"""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from coltran_tf.train import trainer
from conftest import REPO_ROOT, run_command

TRAIN_LOG = trainer.TRAIN_LOG


def _read_log(logdir):
    with open(os.path.join(logdir, TRAIN_LOG)) as f:
        return [json.loads(line) for line in f]


def _command(config, logdir, *extra):
    return [sys.executable, "-m", "coltran_tf.commands.train", f"--config={config}",
            f"--logdir={logdir}",
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
    result = run_command("coltran_tf.commands.train", f"--config={config}",
                         f"--logdir={logdir}", *extra)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_sigterm_checkpoints_and_says_how_to_resume(tmp_path):
    """SIGTERM mid-run: a checkpoint of the last finished step and the way on
    (that a rerun resumes from such a checkpoint, to the same step count as an
    uninterrupted run, is test_train.py's test_resume_...; the command calls
    the same trainer.train)."""
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
    assert f"Saved {logdir}/ckpt-{step}" in text


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


@pytest.mark.slow  # two worker processes; Mirrored covers the step; -m slow runs it
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
    result = run_command("coltran_tf.commands.train", "--config=configs/colorizer.py:tiny",
                         f"--logdir={tmp_path}", "--config.no_such_key=1")
    assert result.returncode == 2 and "no_such_key" in result.stderr
    result = run_command("coltran_tf.commands.train", "--config=colorizer:tiny",
                         f"--logdir={tmp_path}",
                         "--config.dataset=folder",
                         f"--config.data.data_dir={tmp_path / 'missing'}")
    assert result.returncode == 2 and "missing" in result.stderr
    assert "--config.data.data_dir" in result.stderr
    # A released-weights URL that cannot be fetched.
    monkeypatch.setenv("COLTRAN_TF_HOME", str(tmp_path / "cache"))
    result = run_command("coltran_tf.commands.train", "--config=colorizer:tiny",
                         f"--logdir={tmp_path}",
                         "--mode=eval_test", "--checkpoint=http://127.0.0.1:9/coltran.zip")
    assert result.returncode == 2
    assert "cannot reach http://127.0.0.1:9/coltran.zip" in result.stderr
    assert "--checkpoints=DIR" in result.stderr


@pytest.mark.slow  # a benchmark tool's run (~25 s); -m slow runs it
def test_benchmark_train_reports_steps_per_second(tmp_path):
    out = _run([sys.executable, "tools/benchmark_train.py", "--configs=color_upsampler",
                "--variants=tiny", "--steps=2", "--noxla", "--precisions=float32,bfloat16"])
    rows = {x.split()[1]: x.split() for x in out.splitlines()
            if x.startswith("color_upsampler:tiny")}
    assert set(rows) == {"float32", "bfloat16"}
    for row in rows.values():
        batch, steps_per_sec, examples_per_sec = row[2:5]
        assert int(batch) == 2 and float(steps_per_sec) > 0
        np.testing.assert_allclose(float(examples_per_sec), 2 * float(steps_per_sec), rtol=0.02)
    ratio = float(rows["bfloat16"][5].rstrip("x"))  # bfloat16's speedup, same run
    np.testing.assert_allclose(ratio, float(rows["bfloat16"][3]) / float(rows["float32"][3]),
                               rtol=0.02)
