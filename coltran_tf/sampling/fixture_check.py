"""Checks our port against outputs of the original ColTran (oracle fixtures).

A fixture directory (format of ../shared/fixtures/reference/tiny) holds one
folder per model with `layout.json` (the original config and checkpoint
layout), `ckpt/` (an original checkpoint), `inputs.npz` (one eval batch) and
`expected.npz` (what the original computed). For every model we build ours
from the fixture's own config, convert the checkpoint into our format (raw and
EMA weights, both saved), load it back, recompute every array listed in
`expected.npz` with each weight set and compare.
"""

import dataclasses
import json
import os
import re
import tempfile

import numpy as np

from coltran_tf.checkpoints.native import WEIGHTS_FILE, load_model_dir, save_model_dir
from coltran_tf.checkpoints.reference import load_reference_checkpoint
from coltran_tf.models.builder import build_model, model_resolution
from coltran_tf.sampling.cached_sampler import sample_colorizer_cached
from coltran_tf.sampling.colorizer_sampler import sample_colorizer_loop
from coltran_tf.utils import image_ops

FLOAT_TOLERANCE = 1e-4  # logits and probabilities (absolute)
LOSS_TOLERANCE = 1e-4  # bits
_NOT_COMPARED = ("pixel_index",)


@dataclasses.dataclass
class Comparison:
    model: str
    array: str
    kind: str  # "float", "loss" or "exact"
    value: float  # max abs difference, or number of differing pixels for "exact"
    ok: bool

    def line(self) -> str:
        if self.kind == "exact":
            measure = f"differing pixels = {int(self.value)}"
        else:
            measure = f"max |diff| = {self.value:.3e}"
        return f"{'OK  ' if self.ok else 'FAIL'} {self.model:18s} {self.array:34s} {measure}"


def _model_dirs(fixture_dir):
    manifest = os.path.join(fixture_dir, "manifest.json")
    if os.path.isfile(manifest):
        with open(manifest) as f:
            models = json.load(f)["models"]
        return [(name, os.path.join(fixture_dir, os.path.dirname(m["layout"])))
                for name, m in models.items()]
    return sorted((name, os.path.join(fixture_dir, name)) for name in os.listdir(fixture_dir)
                  if os.path.isfile(os.path.join(fixture_dir, name, "layout.json")))


def _at_pixels(array, index):
    return array[index[:, 0], index[:, 1], index[:, 2]]


class _Computer:
    """Computes the fixture's arrays with our model, lazily and once per weights.

    One model serves both weight sets: `load(weights)` puts the raw or the EMA
    weights into it (from our saved format), and each set's outputs are
    computed once and kept.
    """

    def __init__(self, model, load, inputs, pixel_index, sampler="loop", loaded=None):
        self.model, self._load, self._loaded = model, load, loaded
        self.inputs = inputs
        self.pixel_index = pixel_index
        self.sampler = sampler
        self._cache = {}

    def _with(self, weights):
        if self._loaded != weights:
            self._load(self.model, weights)
            self._loaded = weights
        return self.model

    def _outputs(self, weights):
        if weights not in self._cache:
            model = self._with(weights)
            outputs = model.compute_outputs(self.inputs)
            losses = model.batch_loss(self.inputs, outputs)
            self._cache[weights] = ({k: np.asarray(v) for k, v in outputs.items()},
                                    {k: float(v) for k, v in losses.items()})
        return self._cache[weights]

    def _colorizer_sample(self):
        if "sample" not in self._cache:
            model = self._with("ema")
            gray = image_ops.rgb_to_grayscale(self.inputs[model.input_key])
            sample = sample_colorizer_loop if self.sampler == "loop" else sample_colorizer_cached
            out = sample(model, gray, mode="argmax", norm_context="reference")
            self._cache["sample"] = {k: np.asarray(v) for k, v in out.items()}
        return self._cache["sample"]

    def compute(self, name):
        match = re.fullmatch(r"(raw|ema)_(encoder_)?(logits_at_pixels|logits_argmax|"
                             r"loss_bits_per_dim|total_loss)", name)
        if match:
            outputs, losses = self._outputs(match.group(1))
            head = "encoder_logits" if match.group(2) else "logits"
            what = match.group(3)
            if what == "logits_at_pixels":
                return _at_pixels(outputs[head], self.pixel_index)
            if what == "logits_argmax":
                return outputs[head].argmax(-1)
            if what == "total_loss":
                return losses["loss"]
            return losses["encoder_loss_bits_per_dim" if match.group(2) else "loss_bits_per_dim"]
        return self._compute_sample(name)

    def _compute_sample(self, name):
        if name in ("sample_auto_argmax", "sample_parallel") or name.startswith("sample_proba"):
            out = self._colorizer_sample()
            key = {"sample_auto_argmax": "auto_argmax", "sample_parallel": "parallel"}.get(name)
            if key:
                return out[key]
            proba = out["proba"]
            return {"sample_proba_at_pixels": lambda: _at_pixels(proba, self.pixel_index),
                    "sample_proba_argmax": lambda: proba.argmax(-1),
                    "sample_proba_max": lambda: proba.max(-1)}[name]()
        if name in ("sample_bit_up_argmax", "sample_high_res_argmax"):
            # The original's upsamplers condition on the batch's ground truth.
            return np.asarray(self._with("ema").sample(self.inputs, mode="argmax"))
        raise KeyError(name)


def _kind(name, expected):
    if "loss" in name:
        return "loss"
    if np.issubdtype(expected.dtype, np.integer):
        return "exact"
    return "float"


def _compare(model_name, name, expected, actual):
    kind = _kind(name, expected)
    if kind == "exact":
        actual = np.asarray(actual)
        if actual.shape != expected.shape:
            return Comparison(model_name, name, kind, float(expected.size), False)
        value = float(np.count_nonzero(actual.astype(np.int64) != expected.astype(np.int64)))
        return Comparison(model_name, name, kind, value, value == 0)
    actual = np.asarray(actual, np.float64)
    if actual.shape != expected.shape:
        return Comparison(model_name, name, kind, float("inf"), False)
    value = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    tolerance = LOSS_TOLERANCE if kind == "loss" else FLOAT_TOLERANCE
    return Comparison(model_name, name, kind, value, value <= tolerance)


SAMPLERS = ("loop", "cached")


def verify_model_fixture(name, model_dir, workdir, sampler="loop"):
    """Yields a Comparison for every array of one model's expected.npz.

    `sampler` is the colorizer sampler whose reference-compatible mode makes
    the sample_* arrays: "loop" (the original algorithm) or "cached".
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r}; choose one of {SAMPLERS}.")
    with open(os.path.join(model_dir, "layout.json")) as f:
        layout = json.load(f)
    config = layout["config"]
    if "resolution" in layout and model_resolution(config) != int(layout["resolution"]):
        raise ValueError(f"{name}: the config gives resolution {model_resolution(config)} but "
                         f"layout.json says {layout['resolution']}.")
    checkpoint = os.path.join(model_dir, layout.get("checkpoint", "ckpt"))
    # The converter's output in our format, raw and EMA, from one converted model;
    # then one model of ours loaded from it, taking either weight set in turn.
    converted = build_model(config)
    dirs = {}
    for weights in ("raw", "ema"):
        load_reference_checkpoint(converted, checkpoint, use_ema=weights == "ema")
        dirs[weights] = save_model_dir(converted, config, os.path.join(workdir, f"{name}-"
                                                                        f"{weights}"))
    del converted
    model = load_model_dir(dirs["ema"])[0]
    inputs = dict(np.load(os.path.join(model_dir, "inputs.npz")))
    expected = np.load(os.path.join(model_dir, "expected.npz"))
    computer = _Computer(
        model, lambda m, weights: m.load_weights(os.path.join(dirs[weights], WEIGHTS_FILE)),
        inputs, expected["pixel_index"], sampler, loaded="ema")
    for array in expected.files:
        if array in _NOT_COMPARED:
            continue
        try:
            actual = computer.compute(array)
        except KeyError:
            raise ValueError(f"{name}: expected.npz lists {array!r}, which this tool does not "
                             "know how to compute; refusing to skip it silently.") from None
        yield _compare(name, array, expected[array], actual)


def verify_fixture_dir(fixture_dir, report=print, sampler="loop"):
    """Verifies every model of a fixture directory; returns all Comparisons."""
    if not os.path.isdir(fixture_dir):
        raise FileNotFoundError(f"Fixture directory {fixture_dir!r} does not exist.")
    entries = _model_dirs(fixture_dir)
    if not entries:
        raise FileNotFoundError(f"No model folders with layout.json in {fixture_dir!r}.")
    results = []
    with tempfile.TemporaryDirectory(prefix="coltran-fixture-") as workdir:
        for name, model_dir in entries:
            for comparison in verify_model_fixture(name, model_dir, workdir, sampler):
                report(comparison.line())
                results.append(comparison)
    return results
