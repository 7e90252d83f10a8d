"""ColTran's stages as serving modules (utils.serving): an upsampler's one
parallel pass, (gray, channels) -> argmax, logits; the colorizer's cached
sampler, (gray, seeds or uniforms, temperature, top_k, top_p) -> coarse, proba.
The signatures' shapes and units: docs/reference.md, Export (written down
once). Which module serves a stage is the stage table's `serving`
(configs/stages.py)."""


import numpy as np
import tensorflow as tf

from coltran_tf.configs import stages
from coltran_tf.configs.sampler import DEFAULTS
from coltran_tf.sampling.cached_sampler import seed_uniforms, serving_sampler
from coltran_tf.utils.serving import ServingModule

COLORIZER_LITERT = (
    "The colorizer's sampling loop does not convert to LiteRT: TensorFlow's LiteRT converter "
    "fails with 'operand #1 does not dominate this use' (a Transpose outside the loops is "
    "handed a permutation constant that lives inside a loop body). Export the colorizer as "
    "--format=savedmodel or --format=onnx (README, Deploy).")


class UpsamplerServing(ServingModule):
    """An upsampler's parallel pass: (gray, channels) -> argmax, logits."""

    tolerances = {"logits": 1e-3}
    exact = ("argmax",)
    channel_levels = 256  # the values its `channels` input takes

    def __init__(self, model, portable: bool = False):
        del portable  # one graph serves every format
        super().__init__(name=model.name)
        self.model = model
        side = int(model.resolution)
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([None, side, side, 1], tf.int32, name="gray"),
            tf.TensorSpec([None, side, side, 3], tf.int32, name="channels")])

    def _serve(self, gray, channels):
        embedded = self.model.gray_embedding(gray[..., 0])
        logits = tf.stack([tf.cast(self.model.channel_logits(embedded, channels[..., c], c),
                                   tf.float32) for c in range(3)], axis=3)
        return {"argmax": tf.argmax(logits, axis=-1, output_type=tf.int32), "logits": logits}

    def example_inputs(self, seed: int = 0) -> dict:
        rng = np.random.default_rng(seed)
        shape = (1, int(self.model.resolution), int(self.model.resolution))
        return {"gray": rng.integers(0, 256, shape + (1,)).astype(np.int32),
                "channels": rng.integers(0, self.channel_levels, shape + (3,)).astype(np.int32)}


class ColorUpsamplerServing(UpsamplerServing):
    channel_levels = 8  # the colorizer's 3-bit colours


class ColorizerServing(ServingModule):
    """The cached sampler (cached_sampler.serving_sampler): (gray, seeds,
    temperature, top_k, top_p) -> coarse, proba. portable=True (ONNX, LiteRT):
    the plain-graph loop and uniforms in place of seeds, since neither runtime
    has TensorFlow's stateless random generator."""

    tolerances = {"proba": 1e-3}
    exact = ("coarse",)
    extra_signatures = ("sample",)
    litert_refusal = COLORIZER_LITERT

    def __init__(self, model, portable: bool = False):
        super().__init__(name="colorizer")
        self.model, self.portable = model, portable
        side = int(model.resolution)
        sampler = serving_sampler(model, jit_compile=not portable, seeded=not portable)
        draws = (tf.TensorSpec([None, side, side], tf.float32, name="uniforms") if portable
                 else tf.TensorSpec([None], tf.int64, name="seeds"))
        specs = [tf.TensorSpec([None, side, side, 1], tf.int32, name="gray"), draws,
                 tf.TensorSpec([], tf.float32, name="temperature"),
                 tf.TensorSpec([], tf.int32, name="top_k"),
                 tf.TensorSpec([], tf.float32, name="top_p")]
        if portable:
            def serve(gray, uniforms, temperature, top_k, top_p):
                return sampler(gray, uniforms, temperature, top_k, top_p)
        else:
            def serve(gray, seeds, temperature, top_k, top_p):
                return sampler(gray, seeds, temperature, top_k, top_p)
        self.serve = tf.function(serve, input_signature=specs)

    def example_inputs(self, seed: int = 0) -> dict:
        """Two random images, seeds seed and seed + 1 (or their uniforms), the
        default controls (no temperature, top-k, top-p)."""
        rng = np.random.default_rng(seed)
        side = int(self.model.resolution)
        seeds = seed + np.arange(2)
        return {"gray": rng.integers(0, 256, (2, side, side, 1)).astype(np.int32),
                ("uniforms" if self.portable else "seeds"):
                    seed_uniforms(self.model, seeds) if self.portable else seeds.astype(np.int64),
                "temperature": np.float32(DEFAULTS.temperature),
                "top_k": np.int32(DEFAULTS.top_k), "top_p": np.float32(DEFAULTS.top_p)}


def serving_module(spec: str, precision: str = "float32", portable: bool = False):
    """The serving module of a ColTran stage's model (any form load_model takes),
    as the stage table names it."""
    from coltran_tf.checkpoints.loading import load_model

    model, _, _ = load_model(spec, precision=precision)
    return stages.load(stages.of_model_name(model.name).serving)(model, portable)
