"""Running a command's main as a console script."""

import re
import sys

from absl import app, flags


def parse_flags(argv: list[str]) -> list[str]:
    """FLAGS(argv), with a config override of a key the config lacks (which
    ml_collections reports as a bare KeyError) turned into a flags error that
    names the key."""
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as error:
        text = str(error).replace("\\", "")
        key = next(iter(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)), "?")
        guess = re.search(r'Did you mean "([^"]+)"', text)
        hint = f" (did you mean {guess.group(1)!r}?)" if guess else ""
        raise flags.Error(f"the config has no key {key!r}{hint}; check the spelling of "
                          "the --config.KEY=VALUE overrides") from None


def _parse_with_usage(argv: list[str]) -> list[str]:
    try:
        return parse_flags(argv)
    except flags.Error as error:
        sys.stderr.write(f"FATAL Flags parsing error: {error}\n"
                         "Pass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(1)


def run(main, module_name: str, argv: list[str] | None = None) -> None:
    """absl's app.run, with the command's flags shown by --help whatever the
    program is called (a console script's main module is its wrapper, not the
    module that defines the flags), and config-key typos reported as such."""
    values = flags.FLAGS
    program = (argv or sys.argv)[0]
    for flag in values.get_key_flags_for_module(module_name):
        values.register_key_flag_for_module(program, flag)
    app.run(main, argv=argv, flags_parser=_parse_with_usage)
