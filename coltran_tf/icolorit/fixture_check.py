"""Checks our iColoriT against outputs of the official implementation.

A fixture directory holds model.json (embed_dim, depth, num_heads, patch_size,
img_size, mlp_ratio, ...), state_dict.npz (the official PyTorch state_dict as
NumPy), inputs.npz (lab: (B, 3, 224, 224) normalized Lab, mask_not_hint:
(B, 12544)) and expected.npz (output: (B, N, 2P²), the official forward).
"""

import json
import os

import numpy as np

from coltran_tf.icolorit.convert import load_state_dict, read_state_dict
from coltran_tf.icolorit.model import build_icolorit, network_input

TOLERANCE = 1e-4
_FILES = ("model.json", "state_dict.npz", "inputs.npz", "expected.npz")


def check_fixture(directory: str) -> float:
    """Max abs difference between our tokens and expected.npz's `output`."""
    missing = [f for f in _FILES if not os.path.exists(os.path.join(directory, f))]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {missing}; a fixture has {list(_FILES)}.")
    with open(os.path.join(directory, "model.json")) as f:
        spec = json.load(f)
    for key, supported in (("head_mode", "cnn"), ("use_rpb", True), ("avg_hint", True)):
        if spec.get(key, supported) != supported:
            raise ValueError(f"model.json has {key}={spec[key]!r}; only {supported!r} "
                             "(the released models) is implemented.")
    model = build_icolorit({"patch_size": spec["patch_size"], "hidden_size": spec["embed_dim"],
                            "depth": spec["depth"], "num_heads": spec["num_heads"],
                            "mlp_ratio": int(spec.get("mlp_ratio", 4)),
                            "image_size": spec.get("img_size", 224)})
    load_state_dict(model, read_state_dict(os.path.join(directory, "state_dict.npz")))
    with np.load(os.path.join(directory, "inputs.npz")) as inputs:
        lab = np.transpose(inputs["lab"], (0, 2, 3, 1))
        mask = inputs["mask_not_hint"]
    if spec.get("mask_cent"):
        raise ValueError("mask_cent=True is not implemented (no released model uses it).")
    tokens = np.asarray(model.tokens(network_input(lab, mask)))
    with np.load(os.path.join(directory, "expected.npz")) as expected:
        reference = expected["output"]
    if tokens.shape != reference.shape:
        raise ValueError(f"Output shape {tokens.shape} != expected {reference.shape}.")
    return float(np.abs(tokens - reference).max())
