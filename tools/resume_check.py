"""Kill a training run with SIGKILL at random moments, resume it, and compare
its final checkpoint with an uninterrupted run's, variable by variable.

  python tools/resume_check.py                                   # tiny colorizer
  python tools/resume_check.py --family=icolorit --steps=60 --kills=3

Trains --steps steps of the family's tiny config twice, with checkpoints
every --save_every steps: once uninterrupted, once killed --kills times at
random moments (`kill -9`, no chance to save) and rerun by the same command
until it finishes. Prints each kill's step, then the largest |difference|
over every variable of the two final checkpoints (weights, optimizer slots,
EMA, seed generators, data position) and whether they are equal bit for bit.
Exit code 0 when they are, 1 when not.
"""

import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import _paths  # noqa: F401
from absl import app, flags


def _define_flags():
    """Only when run as a script: importing the module (tests) defines no flags."""
    flags.DEFINE_enum("family", "coltran", ["coltran", "icolorit"], "Which training command.")
    flags.DEFINE_integer("steps", 200, "Training steps of each run.")
    flags.DEFINE_integer("save_every", 5, "Checkpoint every this many steps.")
    flags.DEFINE_integer("kills", 3, "Random SIGKILLs of the interrupted run.")
    flags.DEFINE_integer("seed", 0, "Seed of the kill moments.")
    flags.DEFINE_string("workdir", None, "Where the two runs go (default: a temporary folder).")


def _command(family: str, logdir: str, steps: int, save_every: int) -> list[str]:
    if family == "coltran":
        return [sys.executable, "-m", "coltran_tf.commands.train", "--config=colorizer:tiny",
                f"--logdir={logdir}", f"--config.max_train_steps={steps}",
                "--config.save_checkpoint_secs=0", f"--steps_per_summaries={save_every}"]
    return [sys.executable, "-m", "coltran_tf.commands.icolorit_train",
            "--config=icolorit:tiny", f"--logdir={logdir}", f"--config.max_train_steps={steps}",
            f"--config.save_checkpoint_steps={save_every}",
            f"--config.steps_per_log={save_every}"]


def _latest_step(logdir: str) -> int:
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(logdir)
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def _run_with_kills(command, logdir, steps, kills, rng, duration, report) -> None:
    """Reruns `command` until it finishes, killing it `kills` times at a moment
    drawn between 30% and 90% of `duration` (an uninterrupted run's seconds)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for kill in range(kills + 1):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if kill < kills:
            time.sleep(rng.uniform(0.3, 0.9) * duration)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                report(f"killed at a random moment; newest checkpoint: step "
                       f"{_latest_step(logdir)}")
                continue
        process.wait()
        if _latest_step(logdir) >= steps:
            return
    raise RuntimeError("The interrupted run did not finish.")


def compare(first: str, second: str) -> tuple[float, int]:
    """(largest |difference| over all variables of the two newest checkpoints,
    number of variables that differ)."""
    from coltran_tf.utils.checkpointing import differences

    found = differences(first, second)
    return max(found.values(), default=0.0), len(found)


def main(argv):
    del argv
    f = flags.FLAGS
    root = f.workdir or tempfile.mkdtemp(prefix="resume_check-")
    straight, killed = os.path.join(root, "uninterrupted"), os.path.join(root, "killed")
    report = lambda line: print(line, flush=True)  # noqa: E731
    report(f"{f.family}: {f.steps} steps, checkpoints every {f.save_every}, {f.kills} kills; "
           f"runs in {root}")
    start = time.monotonic()
    subprocess.run(_command(f.family, straight, f.steps, f.save_every), check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    duration = time.monotonic() - start
    report(f"uninterrupted run: {duration:.0f} s")
    _run_with_kills(_command(f.family, killed, f.steps, f.save_every), killed, f.steps,
                    f.kills, random.Random(f.seed), duration, report)
    largest, count = compare(straight, killed)
    verdict = "equal bit for bit" if count == 0 else f"DIFFERENT in {count} variables"
    report(f"final checkpoints: largest |difference| {largest:.3g}: {verdict}")
    return 0 if count == 0 else 1


if __name__ == "__main__":
    _define_flags()
    app.run(main)
