"""tools/mutant_sample.py: a reproducible sample of mutmut's mutants and its scores."""

import json
import os

from conftest import run_command


def _mutants(root, codes_by_file):
    for path, codes in codes_by_file.items():
        os.makedirs(os.path.dirname(root / path), exist_ok=True)
        with open(root / f"{path}.meta", "w") as f:
            json.dump({"exit_code_by_key": codes}, f)


def test_a_sample_is_reproducible_and_scored_with_its_interval(tmp_path):
    import mutant_sample

    codes = {f"m.x_f__mutmut_{i}": code for i, code in
             enumerate([1] * 16 + [0] * 2 + [33] * 1 + [None] * 1 + [-24] * 2)}
    _mutants(tmp_path, {"pkg/m.py": codes, "pkg/n.py": {"n.x_g__mutmut_1": 0}})
    args = ["pkg/m.py", "--count=10", "--seed=3", f"--mutants={tmp_path}"]
    first, again = run_command("mutant_sample", *args), run_command("mutant_sample", *args)
    names = first.stdout.split()
    assert first.returncode == 0 and names == again.stdout.split()
    assert len(names) == 10 == len(set(names)) and set(names) <= set(codes)
    assert run_command("mutant_sample", *args[:2], "--seed=4",
                       f"--mutants={tmp_path}").stdout.split() != names
    # All of a small module; globs pooled into one module.
    everything = run_command("mutant_sample", "pkg/*.py", "--count=100", f"--mutants={tmp_path}")
    assert sorted(everything.stdout.split()) == sorted([*codes, "n.x_g__mutmut_1"])
    scores = run_command("mutant_sample", "pkg/m.py", "--count=100", "--scores",
                         f"--mutants={tmp_path}")
    assert scores.stdout.splitlines()[0] == (
        "pkg/m.py: 22 mutants, 22 sampled: 18 killed, 2 survived, 1 not covered, 1 not run; "
        "killed 18/21 = 86% (95% interval 65%-95%)")
    assert scores.stdout.count("  survived: ") == 2
    low, high = mutant_sample.wilson(18, 21)
    assert round(low, 3) == 0.654 and round(high, 3) == 0.95
    missing = run_command("mutant_sample", "pkg/none.py", f"--mutants={tmp_path}")
    assert missing.returncode == 2 and "run mutmut once" in missing.stderr
