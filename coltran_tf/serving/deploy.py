"""Serving artefacts: iColoriT and the ColTran stages as SavedModel, LiteRT
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

  colorizer     (SavedModel; signatures `sample` and `serving_default`, the cached
                sampler, compiled by XLA when first called) gray (B, R, R, 1)
                int32 in [0, 255], seeds (B,) int64, temperature () float32 > 0,
                top_k () int32 (0: off), top_p () float32 in (0, 1] (1: off)
                -> coarse (B, R, R, 3) uint8 (3-bit colours as x * 32; the color
                upsampler takes coarse // 32) and proba (B, R, R, 512) float32.
                ONNX: the same with uniforms (B, R, R) float32 in place of seeds
                (cached_sampler.seed_uniforms). LiteRT: the converter fails on
                the sampling loop (COLORIZER_LITERT says how).
"""

import json
import os
import shutil
import tempfile

import numpy as np

FORMATS = ("savedmodel", "tflite", "onnx")
EXTRA = "pip install 'coltran_tf[export]'"
TOLERANCE = {"ab": 1e-2, "logits": 1e-3, "proba": 1e-3}  # max |difference| per output
EXACT = ("argmax", "coarse")  # integer outputs: the share of equal values is checked


COLORIZER_LITERT = (
    "The colorizer's sampling loop does not convert to LiteRT: TensorFlow's LiteRT converter "
    "fails with 'operand #1 does not dominate this use' (a Transpose outside the loops is "
    "handed a permutation constant that lives inside a loop body). Export the colorizer as "
    "--format=savedmodel or --format=onnx (README, Deploy).")


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


def colorizer_module(model, portable: bool = False):
    """tf.Module whose signature is the cached sampler
    (cached_sampler.serving_sampler): (gray, seeds, temperature, top_k, top_p)
    -> coarse, proba, its loops compiled by XLA at run time.

    portable=True (ONNX, LiteRT): the plain-graph loop, and `uniforms` (B, R, R)
    in [0, 1) in place of seeds, since neither runtime has TensorFlow's
    stateless random generator (cached_sampler.seed_uniforms turns seeds into
    the uniforms that draw the same samples).
    """
    tf = _tf()
    from coltran_tf.sampling.cached_sampler import serving_sampler

    side = int(model.resolution)
    sampler = serving_sampler(model, jit_compile=not portable, seeded=not portable)
    specs = [tf.TensorSpec([None, side, side, 1], tf.int32, name="gray"), None,
             tf.TensorSpec([], tf.float32, name="temperature"),
             tf.TensorSpec([], tf.int32, name="top_k"),
             tf.TensorSpec([], tf.float32, name="top_p")]
    module = tf.Module(name="colorizer")
    module.model = model
    if portable:
        specs[1] = tf.TensorSpec([None, side, side], tf.float32, name="uniforms")

        @tf.function(input_signature=specs)
        def serve(gray, uniforms, temperature, top_k, top_p):
            return sampler(gray, uniforms, temperature, top_k, top_p)
    else:
        specs[1] = tf.TensorSpec([None], tf.int64, name="seeds")

        @tf.function(input_signature=specs)
        def serve(gray, seeds, temperature, top_k, top_p):
            return sampler(gray, seeds, temperature, top_k, top_p)
    module.serve = serve
    return module


def _saved_config(path: str) -> dict:
    config = os.path.join(path, "config.json")
    if os.path.isfile(config):
        with open(config) as f:
            return json.load(f)
    return {}


def _looks_like_icolorit(path: str) -> bool:
    from coltran_tf import demo

    if demo.is_demo(path):
        return path == "demo:icolorit"
    return path.endswith((".npz", ".pth")) or "patch_size" in _saved_config(path)


def load_module(spec: str, kind: str = "auto", resolution: int = 0,
                precision_name: str = "float32", fmt: str = "savedmodel"):
    """The serving tf.Module of a model spec for format `fmt` (icolorit_module,
    upsampler_module or colorizer_module)."""
    if kind == "icolorit" or (kind == "auto" and _looks_like_icolorit(spec)):
        from coltran_tf.icolorit.convert import load_icolorit

        model = load_icolorit(spec, report=lambda line: None, precision=precision_name)
        if resolution and resolution != model.image_size:
            raise ExportError(
                f"--resolution={resolution}: this iColoriT model takes {model.image_size}x"
                f"{model.image_size} inputs (its position table is fixed).")
        return icolorit_module(model, model.image_size)
    from coltran_tf.checkpoints.loading import load_model

    model, _, _ = load_model(spec, precision=precision_name)
    if hasattr(model, "channel_logits"):
        return upsampler_module(model)
    return colorizer_module(model, portable=fmt != "savedmodel")


def example_inputs(module, seed: int = 0) -> dict:
    """A fixed input for the signature of `module` (what the checks compare on):
    random images; the colorizer's a batch of two, seeds seed and seed + 1 (or
    their uniforms) and the default controls (no temperature, top-k, top-p)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    batch = 2 if module.name == "colorizer" else 1
    for spec in module.serve.input_signature:
        shape = (batch,) + tuple(spec.shape[1:])
        if spec.shape.rank == 0:  # the colorizer's controls
            inputs[spec.name] = np.asarray({"temperature": 1.0, "top_k": 0, "top_p": 1.0}
                                           [spec.name], spec.dtype.as_numpy_dtype)
        elif spec.name == "seeds":
            inputs[spec.name] = seed + np.arange(batch, dtype=np.int64)
        elif spec.name == "uniforms":
            from coltran_tf.sampling.cached_sampler import seed_uniforms

            inputs[spec.name] = seed_uniforms(module.model, seed + np.arange(batch))
        elif spec.name == "lightness":
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
    signatures = {"serving_default": module.serve}
    if module.name == "colorizer":
        signatures["sample"] = module.serve
    tf.saved_model.save(module, path, signatures=signatures, options=options)
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


def compare(expected: dict, actual: dict) -> dict:
    """{output: {"max_abs_diff", ["argmax_agreement" of logits | "agreement" of integer
    outputs]}}; raises ExportError when an
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
        if name in EXACT:
            entry["agreement"] = float(np.mean(got == want))
        report[name] = entry
        tolerance = TOLERANCE.get(name)
        if tolerance is not None and not entry["max_abs_diff"] <= tolerance:  # NaN fails too
            raise ExportError(f"Output {name!r} differs from the Keras model by "
                              f"{entry['max_abs_diff']:.3g} (> {tolerance}).")
        if name in EXACT and entry["agreement"] < 0.999:
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
            if fmt == "tflite" and module.name == "colorizer":
                raise ExportError(f"{COLORIZER_LITERT}\n{error}") from None
            raise
        inputs = example_inputs(module)
        progress(f"Checking it with {RUNTIME_NAMES[fmt]} against the Keras model ...")
        expected = {k: np.asarray(v) for k, v in module.serve(**inputs).items()}
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
