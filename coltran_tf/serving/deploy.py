"""Export formats: save a serving module as SavedModel, LiteRT (TFLite) or ONNX,
load it back with that format's own runtime, run it, compare with the Keras
model.

A serving module (utils.serving.ServingModule) comes from its model family:
iColoriT's (icolorit/serving.py) and ColTran's stages' (sampling/serving.py);
their docstrings hold the signatures. This module asks a serving module only
what that interface offers (its signatures, example inputs, tolerances) and
never which model it is; `serving.load_module` picks the family.
"""

import os
import shutil
import tempfile

import numpy as np

FORMATS = ("savedmodel", "tflite", "onnx")
EXTRA = "pip install 'coltran_tf[export]'"


class ExportError(ValueError):
    """An export that cannot be made or does not match the Keras model."""


def _tf():
    import tensorflow as tf

    return tf


def save_savedmodel(module, path: str, custom_gradients: bool = True) -> str:
    tf = _tf()
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=custom_gradients)
    tf.saved_model.save(module, path, signatures=module.signatures(), options=options)
    return path


def run_savedmodel(path: str, inputs: dict) -> dict:
    tf = _tf()
    serve = tf.saved_model.load(path).signatures["serving_default"]
    return {k: np.asarray(v) for k, v in serve(**{k: tf.constant(v)
                                                  for k, v in inputs.items()}).items()}


def _frozen_module(module):
    """A variable-free copy of `module`'s signature: its weights become constants
    (the LiteRT converter otherwise keeps Keras 3's variables as resources that
    the interpreter cannot read)."""
    tf = _tf()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    concrete = module.serve.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    names = [spec.name for spec in module.serve.input_signature]
    holder = tf.Module()
    holder.signatures = lambda: {"serving_default": holder.serve}

    @tf.function(input_signature=module.serve.input_signature)
    def serve(*inputs):
        outputs = frozen(**dict(zip(names, inputs)))  # flat: put the output names back
        return tf.nest.pack_sequence_as(concrete.structured_outputs, tf.nest.flatten(outputs))

    holder.serve = serve
    return holder


def save_tflite(module, path: str) -> str:
    tf = _tf()
    with tempfile.TemporaryDirectory(prefix="coltran-export-") as saved:
        # Inference only: the frozen graph's custom gradients are not kept.
        save_savedmodel(_frozen_module(module), saved, custom_gradients=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, ["serving_default"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            flat = converter.convert()
        except Exception as error:  # noqa: BLE001 - the converter raises many kinds
            raise ExportError(f"The LiteRT converter failed: {_converter_errors(error)}") \
                from None
    with open(path, "wb") as f:
        f.write(flat)
    return path


def _converter_errors(error) -> str:
    """The converter's distinct error messages, without their MLIR locations."""
    found = []
    for line in str(error).splitlines():
        if "error:" not in line:
            continue
        message = line.rsplit("error: ", 1)[-1]
        if message.startswith("loc("):
            message = message.rsplit(")): ", 1)[-1]
        if message not in found:
            found.append(message)
    return "; ".join(found[:3]) or str(error)[:600]


def litert_interpreter(path: str):
    """ai_edge_litert's Interpreter (the LiteRT runtime), else TensorFlow's tf.lite one."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = None
    if Interpreter is None:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=path)


def run_tflite(path: str, inputs: dict) -> dict:
    interpreter = litert_interpreter(path)
    runner = interpreter.get_signature_runner()
    return {k: np.asarray(v) for k, v in runner(**inputs).items()}


def _onnx_modules():
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise ExportError(f"ONNX export needs tf2onnx and onnxruntime ({error.name} is "
                          f"missing): {EXTRA}") from None
    return tf2onnx, onnxruntime


def save_onnx(module, path: str) -> str:
    import logging

    tf2onnx, _ = _onnx_modules()
    # tf2onnx logs a traceback whenever one of its optional graph optimizers
    # gives up (its einsum optimizer on every "..." equation); the graph is
    # kept unoptimized there, and the check below judges the result.
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        tf2onnx.convert.from_function(module.serve,
                                      input_signature=module.serve.input_signature,
                                      opset=17, output_path=path)
    finally:
        logger.setLevel(level)
    return path


def run_onnx(path: str, inputs: dict) -> dict:
    _, onnxruntime = _onnx_modules()
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {i.name: np.asarray(inputs[i.name.split(":")[0]])
                                 for i in session.get_inputs()})
    return {name.split(":")[0]: np.asarray(v) for name, v in zip(names, values)}


SAVERS = {"savedmodel": save_savedmodel, "tflite": save_tflite, "onnx": save_onnx}
RUNNERS = {"savedmodel": run_savedmodel, "tflite": run_tflite, "onnx": run_onnx}


def compare(expected: dict, actual: dict, tolerances: dict, exact=()) -> dict:
    """{output: {"max_abs_diff", ["argmax_agreement" of logits | "agreement" of
    integer outputs]}}; raises ExportError when an output is missing or differs
    beyond `tolerances` (output -> largest |difference|), or an `exact` output
    agrees on fewer than 99.9% of its values."""
    report = {}
    for name, want in expected.items():
        if name not in actual:
            raise ExportError(f"The artefact has no output {name!r} (it has {sorted(actual)}).")
        got = np.asarray(actual[name])
        if got.shape != want.shape:
            raise ExportError(f"Output {name!r} has shape {got.shape}, the Keras model's "
                              f"{want.shape}.")
        entry = {"max_abs_diff": float(np.max(np.abs(got.astype(np.float64) - want)))
                 if want.size else 0.0}
        if name == "logits":
            entry["argmax_agreement"] = float(np.mean(got.argmax(-1) == want.argmax(-1)))
        if name in exact:
            entry["agreement"] = float(np.mean(got == want))
        report[name] = entry
        tolerance = tolerances.get(name)
        if tolerance is not None and not entry["max_abs_diff"] <= tolerance:  # NaN fails too
            raise ExportError(f"Output {name!r} differs from the Keras model by "
                              f"{entry['max_abs_diff']:.3g} (> {tolerance}).")
        if name in exact and entry["agreement"] < 0.999:
            raise ExportError(f"{name} agrees with the Keras model on only "
                              f"{100 * entry['agreement']:.2f}% of values.")
    return report


RUNTIME_NAMES = {"savedmodel": "tf.saved_model.load", "tflite": "the LiteRT interpreter",
                 "onnx": "onnxruntime"}


def export(module, fmt: str, output: str, overwrite: bool = False,
           progress=lambda line: None) -> dict:
    """Writes `module` in `fmt` to `output` (atomically), loads it with its own
    runtime, compares on example_inputs; returns the report. `progress` gets a
    line per stage (the colorizer's take tens of seconds each)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format={fmt!r}: choose one of {list(FORMATS)}.")
    if fmt == "onnx":
        _onnx_modules()
    output = os.path.abspath(output)
    if os.path.exists(output) and not overwrite:
        raise ExportError(f"{output} exists; choose another --output or pass --overwrite.")
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        target = os.path.join(staging, os.path.basename(output))
        progress(f"Converting to {fmt} ...")
        try:
            SAVERS[fmt](module, target)
        except ExportError as error:
            if fmt == "tflite" and module.litert_refusal:
                raise ExportError(f"{module.litert_refusal}\n{error}") from None
            raise
        inputs = module.example_inputs()
        progress(f"Checking it with {RUNTIME_NAMES[fmt]} against the Keras model ...")
        report = {"format": fmt, "outputs": compare(module.expected(inputs),
                                                    RUNNERS[fmt](target, inputs),
                                                    module.tolerances, module.exact)}
        if os.path.exists(output):
            (shutil.rmtree if os.path.isdir(output) else os.remove)(output)
        os.replace(target, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report["path"] = output
    report["bytes"] = _size(output)
    return report


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
               for f in files)
