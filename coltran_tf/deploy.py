"""Serving artefacts: iColoriT and the ColTran upsamplers as SavedModel, LiteRT
(TFLite) and ONNX, each checked by its own runtime against the Keras model.

What each artefact computes (signature `serving_default`, float32 unless said):

  iColoriT      lightness (B, S, S, 1) CIE L in [0, 100], hint_ab (B, S, S, 2)
                Lab a, b of the hints, hint_mask (B, S, S, 1) 1 where a hint is
                -> ab (B, S, S, 2), the predicted Lab a, b (the model's forward;
                S = --resolution, 224 for the released weights).
  upsamplers    gray (B, R, R, 1) int32 in [0, 255], channels (B, R, R, 3) int32
                (color upsampler: 3-bit colours 0..7 at 64x64, R = 64; spatial
                upsampler: 8-bit colours 0..255 resized up to R)
                -> argmax (B, R, R, 3) int32 and logits (B, R, R, 3, 256) float32.

The colorizer's autoregressive sampler is not exported (see the README's Deploy
section for why).
"""

import json
import os
import shutil
import tempfile

import numpy as np

FORMATS = ("savedmodel", "tflite", "onnx")
EXTRA = "pip install 'coltran_tf[export]'"
TOLERANCE = {"ab": 1e-2, "logits": 1e-3}  # max |difference| accepted per output


class ExportError(ValueError):
    """An export that cannot be made or does not match the Keras model."""


def _tf():
    import tensorflow as tf

    return tf


def icolorit_module(model, resolution: int):
    """tf.Module with the iColoriT signature (Lab in, Lab ab out)."""
    tf = _tf()
    from coltran_tf.icolorit.color import AB_NORM, L_CENT, L_NORM

    size = int(resolution)

    class IColoritServing(tf.Module):
        def __init__(self):
            super().__init__(name="icolorit")
            self.model = model

        @tf.function(input_signature=[
            tf.TensorSpec([None, size, size, 1], tf.float32, name="lightness"),
            tf.TensorSpec([None, size, size, 2], tf.float32, name="hint_ab"),
            tf.TensorSpec([None, size, size, 1], tf.float32, name="hint_mask")])
        def serve(self, lightness, hint_ab, hint_mask):
            inputs = tf.concat([(lightness - L_CENT) / L_NORM, hint_ab / AB_NORM * hint_mask,
                                hint_mask], axis=-1)
            return {"ab": tf.cast(self.model(inputs, training=False), tf.float32) * AB_NORM}

    return IColoritServing()


def upsampler_module(model):
    """tf.Module with an upsampler's parallel pass: (gray, channels) -> argmax, logits."""
    tf = _tf()
    side = int(model.resolution)

    class UpsamplerServing(tf.Module):
        def __init__(self):
            super().__init__(name=model.name)
            self.model = model

        @tf.function(input_signature=[
            tf.TensorSpec([None, side, side, 1], tf.int32, name="gray"),
            tf.TensorSpec([None, side, side, 3], tf.int32, name="channels")])
        def serve(self, gray, channels):
            embedded = self.model.gray_embedding(gray[..., 0])
            logits = tf.stack([tf.cast(self.model.channel_logits(embedded, channels[..., c], c),
                                       tf.float32) for c in range(3)], axis=3)
            return {"argmax": tf.argmax(logits, axis=-1, output_type=tf.int32),
                    "logits": logits}

    return UpsamplerServing()


def _saved_config(path: str) -> dict:
    config = os.path.join(path, "config.json")
    if os.path.isfile(config):
        with open(config) as f:
            return json.load(f)
    return {}


def _looks_like_icolorit(path: str) -> bool:
    return path.endswith((".npz", ".pth")) or "patch_size" in _saved_config(path)


def _refuse_colorizer(spec: str) -> None:
    raise ExportError(
        f"{spec} is the ColTran colorizer: its autoregressive sampler is not exported (see "
        "the README's Deploy section); export a color or spatial upsampler, or iColoriT.")


def load_module(spec: str, kind: str = "auto", resolution: int = 0,
                precision_name: str = "float32"):
    """The serving tf.Module of a model spec (icolorit_module / upsampler_module)."""
    if kind == "icolorit" or (kind == "auto" and _looks_like_icolorit(spec)):
        from coltran_tf.icolorit.convert import load_weights

        model = load_weights(spec, report=lambda line: None, precision=precision_name)
        if resolution and resolution != model.image_size:
            raise ExportError(
                f"--resolution={resolution}: this iColoriT model takes {model.image_size}x"
                f"{model.image_size} inputs (its position table is fixed).")
        return icolorit_module(model, model.image_size)
    from coltran_tf.checkpoints.loading import load_model

    if _saved_config(spec).get("model", {}).get("name") == "coltran_core":
        _refuse_colorizer(spec)  # known from the model directory, before building it
    model, _, _ = load_model(spec, precision=precision_name)
    if not hasattr(model, "channel_logits"):
        _refuse_colorizer(spec)
    return upsampler_module(model)


def example_inputs(module, seed: int = 0) -> dict:
    """A fixed input for the signature of `module` (what the checks compare on)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in module.serve.input_signature:
        shape = (1,) + tuple(spec.shape[1:])
        if spec.name == "lightness":
            inputs[spec.name] = rng.uniform(0, 100, shape).astype(np.float32)
        elif spec.name == "hint_ab":
            inputs[spec.name] = rng.uniform(-60, 60, shape).astype(np.float32)
        elif spec.name == "hint_mask":
            inputs[spec.name] = (rng.uniform(size=shape) < 0.02).astype(np.float32)
        elif spec.name == "gray":
            inputs[spec.name] = rng.integers(0, 256, shape).astype(np.int32)
        else:  # channels: 3-bit for the color upsampler's 64x64 input, else 8-bit
            top = 8 if shape[1] <= 64 and "color" in module.name else 256
            inputs[spec.name] = rng.integers(0, top, shape).astype(np.int32)
    return inputs


def save_savedmodel(module, path: str, custom_gradients: bool = True) -> str:
    tf = _tf()
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=custom_gradients)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve},
                        options=options)
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
            raise ExportError(f"The LiteRT converter failed: {str(error)[:600]}") from None
    with open(path, "wb") as f:
        f.write(flat)
    return path


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
    tf2onnx, _ = _onnx_modules()
    tf2onnx.convert.from_function(module.serve, input_signature=module.serve.input_signature,
                                  opset=17, output_path=path)
    return path


def run_onnx(path: str, inputs: dict) -> dict:
    _, onnxruntime = _onnx_modules()
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {i.name: inputs[i.name.split(":")[0]]
                                 for i in session.get_inputs()})
    return {name.split(":")[0]: np.asarray(v) for name, v in zip(names, values)}


SAVERS = {"savedmodel": save_savedmodel, "tflite": save_tflite, "onnx": save_onnx}
RUNNERS = {"savedmodel": run_savedmodel, "tflite": run_tflite, "onnx": run_onnx}


def compare(expected: dict, actual: dict) -> dict:
    """{output: {"max_abs_diff", ["argmax_agreement"]}}; raises ExportError when an
    output is missing or differs beyond TOLERANCE."""
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
        if name == "argmax":
            entry["argmax_agreement"] = float(np.mean(got == want))
        report[name] = entry
        tolerance = TOLERANCE.get(name)
        if tolerance is not None and not entry["max_abs_diff"] <= tolerance:  # NaN fails too
            raise ExportError(f"Output {name!r} differs from the Keras model by "
                              f"{entry['max_abs_diff']:.3g} (> {tolerance}).")
        if name == "argmax" and entry["argmax_agreement"] < 0.999:
            raise ExportError(f"argmax agrees with the Keras model on only "
                              f"{100 * entry['argmax_agreement']:.2f}% of values.")
    return report


def export(module, fmt: str, output: str, overwrite: bool = False) -> dict:
    """Writes `module` in `fmt` to `output` (atomically), loads it with its own
    runtime, compares on example_inputs; returns the report."""
    if fmt not in FORMATS:
        raise ExportError(f"--format={fmt!r}: choose one of {list(FORMATS)}.")
    if fmt == "onnx":
        _onnx_modules()
    output = os.path.abspath(output)
    if os.path.exists(output) and not overwrite:
        raise ExportError(f"{output} exists; choose another --output or pass --overwrite.")
    inputs = example_inputs(module)
    expected = {k: np.asarray(v) for k, v in module.serve(**inputs).items()}
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        target = os.path.join(staging, os.path.basename(output))
        SAVERS[fmt](module, target)
        report = {"format": fmt, "outputs": compare(expected, RUNNERS[fmt](target, inputs))}
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
