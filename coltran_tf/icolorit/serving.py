"""iColoriT as a serving module (utils.serving): lightness, hint_ab and
hint_mask in Lab units -> the predicted ab, the model's forward. The
signature's shapes and units: docs/reference.md, Export (written down once)."""

import json
import os

import numpy as np
import tensorflow as tf

from coltran_tf.icolorit.color import AB_NORM, L_CENT, L_NORM
from coltran_tf.utils.serving import ServingModule


class IColoritServing(ServingModule):
    """Lab in, Lab ab out (the module docstring's signature)."""

    tolerances = {"ab": 1e-2}

    def __init__(self, model, portable: bool = False):
        del portable  # one graph serves every format
        super().__init__(name="icolorit")
        self.model = model
        size = int(model.image_size)
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([None, size, size, 1], tf.float32, name="lightness"),
            tf.TensorSpec([None, size, size, 2], tf.float32, name="hint_ab"),
            tf.TensorSpec([None, size, size, 1], tf.float32, name="hint_mask")])

    def _serve(self, lightness, hint_ab, hint_mask):
        inputs = tf.concat([(lightness - L_CENT) / L_NORM, hint_ab / AB_NORM * hint_mask,
                            hint_mask], axis=-1)
        return {"ab": tf.cast(self.model(inputs, training=False), tf.float32) * AB_NORM}

    def example_inputs(self, seed: int = 0) -> dict:
        """One random photo's lightness with hints at about 2% of its pixels."""
        rng = np.random.default_rng(seed)
        size = int(self.model.image_size)
        return {"lightness": rng.uniform(0, 100, (1, size, size, 1)).astype(np.float32),
                "hint_ab": rng.uniform(-60, 60, (1, size, size, 2)).astype(np.float32),
                "hint_mask": (rng.uniform(size=(1, size, size, 1)) < 0.02).astype(np.float32)}


def is_icolorit(spec: str) -> bool:
    """True for what names iColoriT weights: a state_dict file, 'demo:icolorit',
    or a model directory whose config has a patch size."""
    from coltran_tf import demo

    if demo.is_demo(spec):
        return spec == "demo:icolorit"
    config = os.path.join(spec, "config.json")
    if os.path.isfile(config):
        with open(config) as f:
            return "patch_size" in json.load(f)
    return spec.endswith((".npz", ".pth"))


def serving_module(spec: str, resolution: int = 0, precision: str = "float32",
                   portable: bool = False) -> IColoritServing:
    """The serving module of iColoriT weights (any form load_icolorit takes)."""
    from coltran_tf.icolorit.convert import load_icolorit

    model = load_icolorit(spec, report=lambda line: None, precision=precision)
    if resolution and resolution != model.image_size:
        raise ValueError(f"--resolution={resolution}: this iColoriT model takes "
                         f"{model.image_size}x{model.image_size} inputs (its position table "
                         "is fixed).")
    return IColoritServing(model, portable)
