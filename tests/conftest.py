import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share the two cores: one op thread each instead of two apiece.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(REPO_ROOT, "tools")
if TOOLS not in sys.path:
    sys.path.append(TOOLS)  # the tools' modules, for run_command
SHARED = os.path.join(os.path.dirname(REPO_ROOT), "shared")
REFERENCE_FIXTURES = os.path.join(SHARED, "fixtures", "reference")
from coltran_tf.configs.stages import NAMES as STAGES  # noqa: E402


class Interrupted(Exception):
    """Raised by `interrupt_after` to simulate a job killed mid-run."""


def interrupt_after(count: int):
    """A report callback that stops a job at its progress line '<count>/...'."""
    def report(line):
        if line.startswith(f"{count}/"):
            raise Interrupted(line)
    return report


def missing(reason: str):
    """Skips a test whose input is absent; under CI (CI=true, set by .ci/run) fails
    it instead, so that a faithfulness test cannot silently vanish there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it.", pytrace=False)
    pytest.skip(reason)


def require_shared(*parts) -> str:
    """Path under ../shared, or `missing` with the reason."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        missing(f"oracle fixtures not found at {path} (they live in ../shared beside the "
                "checkout)")
    return path


def require_fixtures(*parts) -> str:
    """Path under ../shared/fixtures/reference, or `missing` with the reason."""
    return require_shared("fixtures", "reference", *parts)


# -- the one factory of tiny ColTran models -----------------------------------------

def tiny_config(stage: str, spatial_resolution: int = 128, low_resolution: int = 64):
    """The `tiny` preset of a stage; the spatial upsampler works from
    `low_resolution` to `spatial_resolution` (small canvases keep tests fast)."""
    from coltran_tf.configs import get_preset

    config = get_preset(stage, "tiny")
    if stage == "spatial_upsampler":
        config.resolution = [spatial_resolution, spatial_resolution]
    config.downsample_res = low_resolution
    return config


def write_tiny_models(root, stages=STAGES, seed: int = 3, **sizes) -> str:
    """Untrained tiny model directories `root/<stage>/` (what --checkpoints and the
    browser tool's --coltran_dir point at); returns root."""
    import keras

    from coltran_tf.checkpoints.native import save_model_dir
    from coltran_tf.models.builder import build_model

    keras.utils.set_random_seed(seed)
    for stage in stages:
        config = tiny_config(stage, **sizes)
        save_model_dir(build_model(config), config, os.path.join(str(root), stage))
    return str(root)


# -- commands in this process -----------------------------------------------------------

@dataclasses.dataclass
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


def forget_command_flags() -> None:
    """Removes the flags the commands (and tools) defined, so that the next
    command module imported or reloaded defines its own (they share names)."""
    from absl import flags

    from coltran_tf.utils import cli

    values = flags.FLAGS
    for name in list(values):
        owner = values.find_module_defining_flag(name) or ""
        if owner == cli.__name__:
            continue
        if owner.startswith(("coltran_tf.", "benchmark_", "check_gen_dir", "tfrecords_to_",
                             "verify_", "mutant_")) or name.startswith("config."):
            delattr(values, name)


def fresh_command_module(module_name: str):
    """The command module, (re)imported after forget_command_flags(): its flags
    defined afresh, with their defaults."""
    forget_command_flags()
    if module_name in sys.modules:
        return importlib.reload(sys.modules[module_name])  # defines its flags again
    return importlib.import_module(module_name)


def run_command(module_name: str, *args: str) -> CommandResult:
    """A command's flag parsing and main(), in this process: what its console
    script does (utils.cli.execute: the same help, errors and exit codes),
    without starting Python and TensorFlow again. Flags of the commands run
    before are forgotten first (they share names). Tools of tools/ run the same
    way by their module name."""
    from absl import flags

    from coltran_tf.configs import expand_config_flag
    from coltran_tf.utils import cli

    values = flags.FLAGS
    module = fresh_command_module(module_name)
    out, err, saved_argv = io.StringIO(), io.StringIO(), sys.argv
    argv = [module_name, *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            sys.argv = argv  # ml_collections finds --config.KEY overrides there
            expand = expand_config_flag if "config" in values else None
            code = cli.execute(module.main, module.__name__, argv, expand)
        except SystemExit as error:
            code = error.code
        finally:
            sys.argv = saved_argv
            for name in ("verbose", "version"):
                values[name].unparse()
    return CommandResult(int(code or 0), out.getvalue(), err.getvalue())
