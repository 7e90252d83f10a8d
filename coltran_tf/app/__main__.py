"""`python -m coltran_tf.app`: the browser tool (coltran_tf/commands/app.py)."""

from coltran_tf.commands.app import run

if __name__ == "__main__":
    run()
