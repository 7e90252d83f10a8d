"""Numeric precision of a model: float32, or bfloat16 mixed precision.

"bfloat16" is Keras' `mixed_bfloat16` policy: variables (and so optimizer
slots, EMA shadows and checkpoints) stay float32, layers compute in
bfloat16. The layers keep in float32 what needs the range or the resolution:
attention softmaxes, LayerNorm statistics, logits and losses, and the
samplers' probabilities (see the README's "bfloat16" section for the
measurements behind each choice).

A policy applies to the layers created while it is the global one, so models
are built inside `policy_scope` (Keras keeps the global policy per thread).
This module imports Keras only when a scope is entered (commands read the
choices before they import TensorFlow).
"""

import contextlib
import os

PRECISIONS = ("float32", "bfloat16")
CHOICES = PRECISIONS + ("auto",)
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
HELP = ("Numeric precision: float32, bfloat16 (mixed: float32 variables, bfloat16 "
        "compute) or auto (bfloat16 where the hardware computes it fast: a CPU with "
        "AVX512-BF16/AMX, an Ampere or newer GPU, a TPU; float32 elsewhere).")


def check(precision: str, choices=CHOICES) -> str:
    if precision not in choices:
        raise ValueError(f"precision={precision!r} is not supported; choose one of "
                         f"{list(choices)}.")
    return precision


def has_fast_bfloat16() -> bool:
    """Whether this machine's accelerator (or CPU) has bfloat16 matrix units."""
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        return True
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (0, 0))
        return tuple(capability) >= (8, 0)
    return _cpu_has_bfloat16()


CPU_BFLOAT16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def cpu_flags() -> set:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bfloat16_summary() -> str:
    """"AMX-BF16 yes, AVX512-BF16 yes": the CPU features that decide bfloat16's speed
    and which oneDNN kernels run (benchmarks and the docs print it; oneDNN's AMX
    convolution kernels with strides > 1 were wrong in bfloat16, which is why no
    model here runs a strided convolution, see icolorit/patch_embedding.py)."""
    flags = cpu_flags()
    return ", ".join(f"{name} {'yes' if flag in flags else 'no'}"
                     for flag, name in CPU_BFLOAT16_FLAGS.items())


def _cpu_has_bfloat16() -> bool:
    return bool(cpu_flags() & set(CPU_BFLOAT16_FLAGS))


def resolve(precision: str) -> str:
    """"auto" -> "bfloat16" or "float32" for this machine; the others unchanged.
    COLTRAN_TF_PRECISION=float32|bfloat16 overrides what "auto" picks.

    The one place "auto" is decided is where models are built (policy_scope):
    commands pass --precision on as given, and what a model computes in is
    read back from it (model_precision)."""
    check(precision)
    if precision != "auto":
        return precision
    forced = os.environ.get("COLTRAN_TF_PRECISION")
    if forced:
        return check(forced, PRECISIONS)
    return "bfloat16" if has_fast_bfloat16() else "float32"


@contextlib.contextmanager
def policy_scope(precision: str):
    """Layers created inside compute in `precision` ("float32"/"bfloat16"/"auto")."""
    import keras

    policy = POLICIES[resolve(precision)]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def model_precision(model) -> str:
    """"bfloat16" if the model computes in bfloat16, else "float32"."""
    return "bfloat16" if model.compute_dtype == "bfloat16" else "float32"
