"""Kill a training run with SIGKILL at random steps, resume it, and compare its
final checkpoint with an uninterrupted run's, variable by variable.

  python tools/resume_check.py                                   # tiny colorizer
  python tools/resume_check.py --family=icolorit --steps=40 --kills=3

Trains --steps steps of the family's tiny config twice, with a progress line
every step and checkpoints every --save_every steps: once uninterrupted, once
killed --kills times (`kill -9`, no chance to save) and rerun by the same
command until it finishes. Each kill comes when the run reports a step drawn
at random (past the first checkpoint), plus a random delay of up to 0.3 s, so
it lands between checkpoints or inside one. Prints each kill's step, then the
largest |difference| over every variable of the two final checkpoints
(weights, optimizer slots, EMA, seed generators, data position) and whether
they are equal bit for bit. Exit code 0 when they are, 1 when not.
"""

import os
import random
import re
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
    flags.DEFINE_integer("kills", 3, "SIGKILLs of the interrupted run, at random steps.")
    flags.DEFINE_integer("seed", 0, "Seed of the kill steps and delays.")
    flags.DEFINE_string("workdir", None, "Where the two runs go (default: a temporary folder).")


def _command(family: str, logdir: str, steps: int, save_every: int) -> list[str]:
    if family == "coltran":
        return [sys.executable, "-m", "coltran_tf.commands.train", "--config=colorizer:tiny",
                f"--logdir={logdir}", f"--config.max_train_steps={steps}",
                "--config.save_checkpoint_secs=100000",
                f"--config.save_checkpoint_steps={save_every}", "--steps_per_summaries=1"]
    return [sys.executable, "-m", "coltran_tf.commands.icolorit_train",
            "--config=icolorit:tiny", f"--logdir={logdir}", f"--config.max_train_steps={steps}",
            f"--config.save_checkpoint_steps={save_every}", "--config.steps_per_log=1"]


def _latest_step(logdir: str) -> int:
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(logdir)
    return int(latest.rsplit("-", 1)[1]) if latest else 0


_STEP = re.compile(r"^step (\d+)/")


def _run_until(command, target: int | None, delay: float) -> bool:
    """Runs `command`; with a target, kills it `delay` s after it reports that
    step (or a later one). True when it was killed."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    for line in process.stdout:
        match = _STEP.match(line)
        if target is not None and match and int(match.group(1)) >= target:
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
    if process.wait() != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {process.returncode}.")
    return False


def _run_with_kills(command, logdir, steps, save_every, kills, rng, report) -> None:
    """Reruns `command` until it finishes, killing it at `kills` random steps."""
    targets = sorted(rng.sample(range(save_every + 1, steps), min(kills, steps - save_every - 1)))
    for target in targets:
        if _run_until(command, target, rng.uniform(0.0, 0.3)):
            report(f"killed at step {target}+; newest checkpoint: step {_latest_step(logdir)}")
    _run_until(command, None, 0.0)
    if _latest_step(logdir) < steps:
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
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    duration = time.monotonic() - start
    report(f"uninterrupted run: {duration:.0f} s")
    _run_with_kills(_command(f.family, killed, f.steps, f.save_every), killed, f.steps,
                    f.save_every, f.kills, random.Random(f.seed), report)
    largest, count = compare(straight, killed)
    verdict = "equal bit for bit" if count == 0 else f"DIFFERENT in {count} variables"
    report(f"final checkpoints: largest |difference| {largest:.3g}: {verdict}")
    return 0 if count == 0 else 1


if __name__ == "__main__":
    from coltran_tf.utils import cli

    cli.quiet_start(sys.argv)  # TensorFlow's start-up lines, when it reads checkpoints
    _define_flags()
    app.run(main)
