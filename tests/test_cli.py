"""What every command shares (utils/cli.py): --help with the command's own
description, --version, one-line errors with exit 2 before any model loads, a
quiet start, and every console script declared in pyproject.toml."""

import os
import subprocess
import sys
import time
import tomllib

import pytest

from coltran_tf import __version__
from conftest import REPO_ROOT, run_command

with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as _f:
    SCRIPTS = tomllib.load(_f)["project"]["scripts"]
MODULES = {name: target.split(":")[0] for name, target in SCRIPTS.items()}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_starts_with_what_the_command_does_and_exits_0(script):
    module = MODULES[script]
    result = run_command(module, "--help")
    assert result.returncode == 0, result.stderr
    doc = sys.modules[module].__doc__.strip().splitlines()[0]
    assert result.stdout.startswith(doc)
    assert "Exit codes: 0 done" in result.stdout and "--verbose" in result.stdout
    assert "(see above)" not in result.stdout or result.stdout.index("(see above)") > len(doc)
    version = run_command(module, "--version")
    assert version.returncode == 0 and __version__ in version.stdout


def test_usage_errors_exit_2_in_one_line_before_loading_anything(tmp_path):
    cases = [
        ("coltran_tf.commands.colorize", [f"--img_dir={tmp_path / 'nowhere'}", "--store_dir=x"],
         "--img_dir="),
        ("coltran_tf.commands.colorize", ["--img_dir=."], "--store_dir"),  # a missing required flag
        ("coltran_tf.commands.train", ["--config=colorizr:tiny", f"--logdir={tmp_path}"],
         "presets: colorizer, color_upsampler"),
        ("coltran_tf.commands.train", ["--config=configs/nowhere.py", f"--logdir={tmp_path}"],
         "no such file"),
        ("coltran_tf.commands.train", ["--config=colorizer:tny", f"--logdir={tmp_path}"], "tny"),
        ("coltran_tf.commands.icolorit_colorize", [f"--image={tmp_path / 'none.png'}"], "--image="),
        ("coltran_tf.commands.check_gen_dir", [str(tmp_path / "nowhere")], "no such folder"),
        ("coltran_tf.commands.tfrecords_to_images",
         [f"--gen_dir={tmp_path / 'n'}", "--output_dir=o"],
         "no such folder"),
    ]
    for module, args, words in cases:
        start = time.monotonic()
        result = run_command(module, *args)
        assert result.returncode == 2, (module, args, result)
        first = result.stderr.splitlines()[0]
        assert first.startswith("Error: ") and words in first, (module, args, result.stderr)
        assert time.monotonic() - start < 1.0, (module, args)


def test_demo_names_resolve_and_unknown_ones_are_named():
    from coltran_tf import demo

    assert demo.resolve("demo:icolorit") == demo.icolorit_dir()
    assert demo.resolve("demo", "colorizer").endswith(os.path.join("demo", "colorizer"))
    assert demo.resolve("some/dir") == "some/dir"
    with pytest.raises(ValueError, match="demo:colorizer, demo:color_upsampler"):
        demo.resolve("demo:colourizer")
    with pytest.raises(ValueError, match="does not say which demo model"):
        demo.resolve("demo")


def test_a_console_script_starts_quietly_and_validates_in_well_under_a_second(tmp_path):
    """The process boundary is the point: TensorFlow's native start-up lines go to
    the real stderr. A normal run prints the program's lines only; --verbose
    brings TensorFlow's back."""
    code = ("import sys; from coltran_tf.commands.check_gen_dir import run; "
            "sys.argv = ['coltran-check-gen-dir', sys.argv[1]] + sys.argv[2:]; run()")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    start = time.monotonic()
    missing = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nowhere")],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert missing.returncode == 2 and time.monotonic() - start < 5  # no TensorFlow import
    assert missing.stderr.startswith("Error: ")
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "gen0.tfrecords").write_bytes(b"")
    quiet = subprocess.run([sys.executable, "-c", code, str(tmp_path / "gen")],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr  # no oneDNN, CPU-feature or CUDA lines
    verbose = subprocess.run([sys.executable, "-c", code, str(tmp_path / "gen"), "--verbose"],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert verbose.returncode == 0 and "oneDNN" in verbose.stderr, verbose.stderr


def test_every_command_and_flag_the_readme_names_exists():
    """The README's commands: each console script is declared, each of its flags
    is defined by that command (config keys are checked by the config itself)."""
    import importlib
    import re

    from absl import flags

    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        text = f.read()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands = " ".join(blocks).replace("\\\n", " ").splitlines()
    named = set(re.findall(r"`((?:coltran|icolorit)-[a-z-]+)`", text))
    assert named <= set(SCRIPTS), named - set(SCRIPTS)
    checked = 0
    for line in commands:
        for part in line.split("&&"):
            words = part.split()
            if not words or words[0] not in SCRIPTS:
                continue
            run_command(MODULES[words[0]], "--version")  # defines the command's flags
            module = importlib.import_module(MODULES[words[0]])
            own = {flag.name for flag in flags.FLAGS.get_key_flags_for_module(module)}
            for word in words[1:]:
                if word.startswith("--") and not word.startswith("--config."):
                    name = word[2:].split("=")[0]
                    assert name in own | {"verbose", "version"}, (words[0], name)
                    checked += 1
    assert checked > 30
