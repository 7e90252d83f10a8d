"""A seeded random sample of mutmut's mutants, and the scores of a sample.

A whole module's mutation run takes hours on 2 cores (every surviving mutant
runs all the tests that cover its function); a random sample of its mutants
estimates the share killed, with a stated uncertainty.

  mutmut run "nothing"                        # once: writes mutants/ (then stop it)
  mutmut run $(python tools/mutant_sample.py coltran_tf/sampling/symbols.py --count=30)
  python tools/mutant_sample.py coltran_tf/sampling/symbols.py --count=30 --scores
  python tools/mutant_sample.py "coltran_tf/evaluation/*.py" --scores   # one pooled sample

Each argument is one module: a file, or comma-separated globs whose files are
pooled (in that order, each glob's files sorted). The sample depends only on
the module's mutants and --seed, so a run before and after new tests checks
the same mutants. --scores reads mutmut's results
(mutants/**/*.meta) for the sample: killed, survived, not covered by the
selected tests, not yet run, and the killed share with a 95% Wilson interval.
"""

import glob
import json
import math
import os
import random

from absl import app, flags

flags.DEFINE_integer("count", 30, "Mutants sampled from each module.")
flags.DEFINE_integer("seed", 0, "Seed of the sample.")
flags.DEFINE_bool("scores", False, "Print the sample's results instead of its names.")
flags.DEFINE_string("mutants", "mutants", "mutmut's mutants/ directory.")
FLAGS = flags.FLAGS

# mutmut's exit codes (mutmut/stats.py): tests failed (1, 3) or timed out.
KILLED = {1, 3, 36, -24, 24, 152, 255}
SURVIVED, NO_TESTS = 0, {5, 33}


def _meta(module: str) -> dict:
    """{mutant name: mutmut's exit code or None} of the module's files, in order."""
    codes = {}
    for pattern in module.split(","):
        paths = sorted(glob.glob(os.path.join(FLAGS.mutants, pattern + ".meta")))
        if not paths:
            raise app.UsageError(
                f"No {pattern}.meta under {FLAGS.mutants}/: run mutmut once in this directory "
                "first (it writes mutants/ before it runs the tests; it may be stopped then).")
        for path in paths:
            with open(path) as f:
                found = json.load(f)["exit_code_by_key"]
            codes.update({name: found[name] for name in sorted(found)})
    return codes


def sample(codes: dict, count: int, seed: int) -> list[str]:
    """`count` of a module's mutant names (_meta; all of them if it has fewer)."""
    names = list(codes)
    return sorted(random.Random(seed).sample(names, min(count, len(names))))


def wilson(killed: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if not total:
        return 0.0, 1.0
    p = killed / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def main(argv):
    modules = argv[1:] or sorted(
        os.path.relpath(p, FLAGS.mutants)[:-len(".meta")]
        for p in glob.glob(os.path.join(FLAGS.mutants, "**", "*.py.meta"), recursive=True))
    for module in modules:
        codes = _meta(module)
        names = sample(codes, FLAGS.count, FLAGS.seed)
        if not FLAGS.scores:
            print("\n".join(names))
            continue
        results = [codes[name] for name in names]
        killed = sum(code in KILLED for code in results)
        survived = [n for n, c in zip(names, results) if c == SURVIVED]
        uncovered = sum(code in NO_TESTS for code in results)
        pending = sum(code is None for code in results)
        done = len(results) - pending
        low, high = wilson(killed, done)
        print(f"{module}: {len(codes)} mutants, {len(names)} sampled: {killed} killed, "
              f"{len(survived)} survived, {uncovered} not covered, {pending} not run; "
              f"killed {killed}/{done} = {killed / max(done, 1):.0%} "
              f"(95% interval {low:.0%}-{high:.0%})")
        for name in survived:
            print(f"  survived: {name}")


if __name__ == "__main__":
    app.run(main)
