"""The command-line programs: each parses its flags and makes one library call.

Their console scripts are listed in pyproject.toml; `python -m
coltran_tf.commands.NAME` runs the same."""
