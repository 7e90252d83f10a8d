"""Named presets: every config the commands need, inside the package.

A preset is `NAME[:variant,...]`, NAME one of `PRESETS` (`colorizer:tiny`,
`colorizer:baseline`, `spatial_upsampler:demo`, `icolorit:S`); without a
variant it is the paper's configuration. The experiment files in the
repository's top-level `configs/` build on these, and every command that takes
`--config` also takes a preset name (`coltran-train --config=colorizer:tiny`).
"""

import importlib
import importlib.util
import json
import os

import ml_collections

from coltran_tf.configs.stages import NAMES as STAGES  # ColTran's stages, in pipeline order

PRESETS = (*STAGES, "icolorit")
# A stage's config flag may name only variants: `--colorizer_config=tiny`.
PAPER = "paper"
_DIR = os.path.dirname(os.path.abspath(__file__))


class ConfigError(ValueError):
    """A config spec that names no file, preset or variant; says what would."""


def preset_file(name: str) -> str:
    """The file of preset NAME, as `--config` flags take it."""
    if name not in PRESETS:
        raise ConfigError(f"No preset {name!r}; presets: {', '.join(PRESETS)}.")
    return os.path.join(_DIR, f"{name}.py")


def _variant_arg(variants: str) -> str | None:
    """'paper' (or '') -> None; 'tiny,baseline' stays as it is."""
    kept = [v.strip() for v in variants.split(",") if v.strip() and v.strip() != PAPER]
    return ",".join(kept) or None


def get_preset(name: str, variants: str = "") -> ml_collections.ConfigDict:
    """The config of preset NAME with comma-separated variants ('' or 'paper': paper)."""
    preset_file(name)
    module = importlib.import_module(f"coltran_tf.configs.{name}")
    return module.get_config(_variant_arg(variants))


def _is_file_spec(path: str) -> bool:
    return os.sep in path or "/" in path or path.endswith((".py", ".json")) \
        or os.path.isfile(path)


def _load_file(path: str, arg: str) -> ml_collections.ConfigDict:
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path!r} not found (relative paths are taken from "
                          f"the working directory {os.getcwd()}). Presets need no file: "
                          f"{', '.join(PRESETS)}, e.g. colorizer:tiny.")
    if path.endswith(".json"):
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    spec = importlib.util.spec_from_file_location("_experiment_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg or None)


def load_config(spec: str, default_preset: str | None = None) -> ml_collections.ConfigDict:
    """A config from any of the forms the commands take.

    Args:
      spec: `FILE.py[:variant]` (an experiment file's get_config), `FILE.json`
        (a config itself, e.g. a model directory's config.json),
        `NAME[:variant]` (a preset), or with `default_preset` only variants:
        `tiny`, `paper`, `baseline`, `demo`, `tiny,baseline`.
      default_preset: the preset bare variants refer to (a stage's flag).

    Raises:
      ConfigError naming the accepted forms; ValueError for unknown variants.
    """
    path, _, arg = spec.partition(":")
    if _is_file_spec(path):
        return _load_file(path, arg)
    if path in PRESETS:
        return get_preset(path, arg)
    if default_preset is not None and not arg:
        return get_preset(default_preset, path)
    raise ConfigError(
        f"{spec!r} is neither a config file nor a preset. Use FILE.py[:variant], "
        f"FILE.json, or a preset NAME[:variant] with NAME one of {', '.join(PRESETS)}"
        + (f" (or only variants of {default_preset}, e.g. tiny, paper, baseline, demo)"
           if default_preset else "") + ".")


def check_spec(spec: str) -> None:
    """ConfigError (one line: what is wrong, the presets) unless `spec` loads."""
    name = spec.partition(":")[0]
    if name not in PRESETS and not os.path.isfile(name):
        raise ConfigError(f"--config={spec}: no preset {name!r} and no such file; presets: "
                          f"{', '.join(PRESETS)} (with :tiny, :demo, ... e.g. colorizer:tiny), "
                          "or a config file FILE.py[:variant].")
    try:
        load_config(spec)
    except ConfigError:
        raise
    except (ValueError, KeyError) as error:
        raise ConfigError(f"--config={spec}: {error}") from None


def expand_config_flag(argv: list[str], flag: str = "config") -> list[str]:
    """Rewrites `--config=NAME[:variant]` (a preset) to the preset's file, so
    that ml_collections' config-file flag loads presets from any directory;
    ConfigError for a spec that names no preset or file, or an unknown variant."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        prefix = f"--{flag}="
        if arg.startswith(prefix):
            value, rebuild = arg[len(prefix):], lambda v, p=prefix: [p + v]
        elif arg == f"--{flag}" and i + 1 < len(argv):
            value, rebuild = argv[i + 1], lambda v: [f"--{flag}", v]
            i += 1
        else:
            out.append(arg)
            i += 1
            continue
        name, sep, variants = value.partition(":")
        if name in PRESETS and not os.path.exists(name):
            check_spec(value)
            value = preset_file(name) + sep + variants
        elif not os.path.isfile(name):
            check_spec(value)
        out.extend(rebuild(value))
        i += 1
    return out
