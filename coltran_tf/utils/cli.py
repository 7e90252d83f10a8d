"""Running a command's main as a console script."""

import sys

from absl import app, flags


def run(main, module_name: str, argv: list[str] | None = None) -> None:
    """absl's app.run, with the command's flags shown by --help whatever the
    program is called: a console script's main module is its wrapper, not the
    module that defines the flags (`python -m` needs nothing)."""
    values = flags.FLAGS
    program = (argv or sys.argv)[0]
    for flag in values.get_key_flags_for_module(module_name):
        values.register_key_flag_for_module(program, flag)
    app.run(main, argv=argv)
