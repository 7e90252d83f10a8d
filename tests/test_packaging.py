"""The package as a user installs it: a wheel, its console scripts, its presets."""

import os
import shutil
import subprocess
import sys
import tomllib

import pytest

from coltran_tf import configs
from conftest import REPO_ROOT

SCRIPTS = ("coltran-colorize", "coltran-train", "coltran-sample", "coltran-app",
           "coltran-convert", "coltran-evaluate", "coltran-export", "icolorit-colorize",
           "icolorit-train", "icolorit-evaluate", "coltran-check-gen-dir",
           "coltran-tfrecords-to-images")


def _pyproject():
    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_every_package_and_console_script_is_declared():
    project = _pyproject()
    declared = set(project["tool"]["setuptools"]["packages"])
    on_disk = {os.path.relpath(root, REPO_ROOT).replace(os.sep, ".")
               for root, _, files in os.walk(os.path.join(REPO_ROOT, "coltran_tf"))
               if "__init__.py" in files}
    assert on_disk | {"coltran_tf.bundled_photos"} == declared
    assert set(project["project"]["scripts"]) == set(SCRIPTS)


def test_presets_and_stage_config_values():
    assert configs.load_config("tiny", "colorizer").model.hidden_size == 32
    assert configs.load_config("paper", "spatial_upsampler").model.num_encoder_layers == 3
    assert not configs.load_config("colorizer:tiny,baseline").model.decoder.cond_ln
    assert configs.load_config("icolorit:S").model.preset == "S"
    from_file = configs.load_config(os.path.join(REPO_ROOT, "configs", "colorizer.py:demo"))
    assert from_file.to_dict() == configs.get_preset("colorizer", "demo").to_dict()
    with pytest.raises(configs.ConfigError, match="neither a config file nor a preset"):
        configs.load_config("colourizer:tiny")
    with pytest.raises(ValueError, match="Unknown config variant"):
        configs.load_config("huge", "colorizer")
    argv = configs.expand_config_flag(["prog", "--config=colorizer:tiny", "--config", "icolorit"])
    assert argv == ["prog", f"--config={configs.preset_file('colorizer')}:tiny", "--config",
                    configs.preset_file("icolorit")]


@pytest.mark.slow  # .ci/smoke_wheel does this with the wheel's dependencies installed
def test_a_wheel_installed_elsewhere_works_from_any_directory(tmp_path):
    """Build the wheel, install it into a bare target, colorize from another
    directory with the bundled demo weights (nothing read from the checkout)."""
    wheel_dir, target, work = tmp_path / "wheel", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(os.path.join(REPO_ROOT, "data", "camera.png"), work / "photo.png")
    source = tmp_path / "source"  # setuptools builds in the source tree: not in the checkout
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "test-artifacts", "colorized"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheel_dir,
                    source], check=True, capture_output=True)
    (wheel,) = os.listdir(wheel_dir)
    subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel_dir / wheel],
                   check=True, capture_output=True)
    for script in SCRIPTS:
        assert os.path.isfile(target / "bin" / script), script
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3",
           "COLTRAN_TF_HOME": str(tmp_path / "cache")}
    # The presets and the bundled photos (the tiny configs' data) travel in the
    # wheel; that the installed copy is the one used shows in the run below,
    # which names the demo weights under the target.
    assert (target / "coltran_tf" / "configs" / "__init__.py").is_file()
    assert len(os.listdir(target / "coltran_tf" / "bundled_photos")) >= 15
    run = subprocess.run([target / "bin" / "coltran-colorize", "--img_dir=.", "--store_dir=out",
                          "--mode=argmax"], cwd=work, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert str(target / "coltran_tf" / "demo") in run.stdout
    assert (work / "out" / "fullres" / "photo.png").exists()


def test_every_command_explains_its_flags():
    """`--help` of each console script (quick: commands import TensorFlow only
    after their flags are parsed)."""
    for script in SCRIPTS:
        path = shutil.which(script)
        assert path, f"{script} is not on PATH: pip install --no-deps -e ."
        result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode in (0, 1), (script, result.stderr[-1000:])  # absl: 1
        own = [line for line in result.stdout.splitlines() if line.startswith("  --")]
        assert len(own) >= 3, (script, result.stdout[-500:])  # its own flags, explained
