"""What every command shares: help, version, quiet start, errors and exit codes.

Exit codes, the same for every command:
  0    done;
  1    failed while working (the message says what was saved and how to continue);
  2    usage or input error (a flag, a path, a config, a model that does not fit),
       found before any work starts;
  130  interrupted (Ctrl-C): finished work is kept, the same command continues it.

Every command prints its own lines only: TensorFlow's C++ start-up lines (oneDNN,
CPU features, the CUDA probe), absl's INFO lines and Python warnings of the
libraries are hidden unless `--verbose` is given or TF_CPP_MIN_LOG_LEVEL is set
by the user. An error is one line on stderr, `Error: ...`, first.
"""

import contextlib
import os
import re
import sys
import tempfile

from absl import app, flags

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
HELP_FLAGS = ("-h", "--help", "--helpshort", "-?")
VERBOSE_FLAG = "--verbose"

# Lines that TensorFlow's native libraries write to stderr while they load, before
# its logging is set up (so TF_CPP_MIN_LOG_LEVEL does not reach all of them).
_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWE]\d{4} [\d:. ]+\d+ [\w.]+:\d+\]"
    r"|To enable the following instructions:"
    r"|\s*$)")

flags.DEFINE_bool("verbose", False, "Show TensorFlow's and absl's own log lines (hidden by "
                  "default; setting TF_CPP_MIN_LOG_LEVEL shows them too).")
flags.DEFINE_bool("version", False, "Print the package version and exit.")


def define_training_flags() -> None:
    """The flags both training commands (coltran-train, icolorit-train) share
    (defined once per process, whichever command module is imported first)."""
    if "resume_with_changes" in flags.FLAGS:
        return
    flags.DEFINE_bool("resume_with_changes", False, "Resume a --logdir even though the config "
                      "changed a setting that decides which examples the steps see (batch "
                      "size, data, seed, ..., the number of replicas); without it such a "
                      "resume is refused, naming the setting.")
    flags.DEFINE_bool("deterministic_ops", False, "Make every TensorFlow op deterministic "
                      "(tf.config.experimental.enable_op_determinism; slower): what a GPU "
                      "needs for a resumed run to end bit for bit where an uninterrupted one "
                      "would. On CPUs training is deterministic without it.")


def apply_deterministic_ops() -> None:
    """--deterministic_ops of a training command, before any model is built."""
    if flags.FLAGS.deterministic_ops:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def wants_verbose(argv: list[str]) -> bool:
    return VERBOSE_FLAG in argv or "TF_CPP_MIN_LOG_LEVEL" in os.environ


@contextlib.contextmanager
def _stderr_filtered():
    """Runs the body with file descriptor 2 captured, then writes back every
    captured line that is not native start-up noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines()
                    if not _NATIVE_NOISE.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


class _QuietTensorFlowImport:
    """A meta-path finder: the first `import tensorflow` (wherever it happens, after
    flags are checked) loads the native libraries with their start-up lines
    filtered out of stderr."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader)
        return spec


class _FilteredLoader:
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _stderr_filtered():
            self._loader.exec_module(module)
        from absl import logging

        logging.set_verbosity(logging.ERROR)

    def __getattr__(self, name):
        return getattr(self._loader, name)


def quiet_start(argv: list[str]) -> None:
    """Hides TensorFlow's start-up lines (see the module docstring) unless asked
    for; costs nothing until TensorFlow is imported."""
    if wants_verbose(argv) or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # C++ INFO/WARNING/ERROR lines (the CUDA probe)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    import warnings

    for category in (UserWarning, FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def command_name(argv0: str, module_name: str) -> str:
    """'coltran-colorize' for a console script, 'python -m MODULE' otherwise."""
    name = os.path.basename(argv0)
    if name.endswith(".py") or name in ("", "-c", "-m"):
        return f"python -m {module_name}"
    return name


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


def help_text(module_name: str, program: str) -> str:
    """The command's module docstring (what it does, examples) and its flags."""
    module = sys.modules[module_name]
    doc = (module.__doc__ or "").strip()
    values = flags.FLAGS
    own = values.module_help(module_name).strip()
    common = "\n".join(f"  --{name}: {values[name].help}" for name in ("verbose", "version"))
    return (f"{doc}\n\nUsage: {program} [flags]\n\nFlags:\n{own or '  (none)'}\n\n"
            f"Common flags:\n{common}\n\nExit codes: 0 done, 1 failed while working, "
            "2 usage or input error, 130 interrupted (finished work is kept).\n")


def _one_line(error) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("coltran_tf")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def execute(main, module_name: str, argv: list[str], expand=None) -> int:
    """Parses `argv` and runs main(argv): the exit code, with --help, --version,
    flag errors (2), app.UsageError (2) and Ctrl-C (130) handled alike for every
    command. Prints to sys.stdout/sys.stderr only. `expand(argv)` rewrites
    preset names of --config (configs.expand_config_flag; a ValueError there is
    a usage error)."""
    program = command_name(argv[0], module_name)
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        sys.stdout.write(help_text(module_name, program))
        return EXIT_OK
    if "--version" in argv[1:]:
        print(f"{program} (coltran_tf) {_version()}")
        return EXIT_OK
    try:
        if expand is not None:
            argv = expand(argv)
            sys.argv = argv  # ml_collections reads --config.KEY overrides there
        rest = parse_flags(argv)
    except (flags.Error, ValueError) as error:
        print(f"Error: {_one_line(error)}\nSee `{program} --help` for the flags.",
              file=sys.stderr)
        return EXIT_USAGE
    from absl import logging

    logging.use_absl_handler()  # absl's lines as app.run shows them (hidden unless verbose)
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO if wants_verbose(argv) else logging.ERROR)
    try:
        code = main(rest)
    except app.UsageError as error:
        print(f"Error: {_one_line(error)}\nSee `{program} --help` for the flags.",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("Interrupted. Finished work is kept; run the same command again to continue.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return int(code or 0)


def run(main, module_name: str, argv: list[str] | None = None, expand=None) -> None:
    """A command's console script: quiet start, then execute() and exit."""
    argv = list(sys.argv if argv is None else argv)
    quiet_start(argv)
    sys.exit(execute(main, module_name, argv, expand))


def entry_point(main, module_name: str, script: str, expand=None, required=()):
    """A command's console-script function (`run = cli.entry_point(main,
    __name__, "coltran-export")`): marks `required` flags, then run()."""
    def entry():
        if required:
            flags.mark_flags_as_required(list(required))
        run(main, module_name, expand=expand)

    entry.__doc__ = f"The `{script}` console script."
    return entry


def check_writable(path: str, flag: str) -> None:
    """app.UsageError unless `path` (a file or folder to be written) can be created:
    its nearest existing ancestor is a writable folder. Checked before any work."""
    if not path:
        raise app.UsageError(f"{flag} is required.")
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    target = probe if os.path.isdir(probe) else os.path.dirname(probe)
    if probe != os.path.abspath(path) and not os.path.isdir(probe):
        raise app.UsageError(f"{flag}={path}: {probe} is a file, not a folder.")
    if not os.access(target, os.W_OK):
        raise app.UsageError(f"{flag}={path}: {target} is not writable; choose another place.")


def check_exists(path: str | None, flag: str, kind: str = "file or folder") -> None:
    """app.UsageError unless `path` exists (a 'file', a 'folder' or either)."""
    if not path:
        raise app.UsageError(f"{flag} is required.")
    ok = {"file": os.path.isfile, "folder": os.path.isdir}.get(kind, os.path.exists)(path)
    if not ok:
        raise app.UsageError(f"{flag}={path}: no such {kind}.")
