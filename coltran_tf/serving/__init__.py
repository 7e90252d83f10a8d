"""Models as deployable artefacts: SavedModel, LiteRT and ONNX, each loaded back
and run by its own runtime (deploy). `load_module` picks the model family's
serving module for a model spec."""


def load_module(spec: str, kind: str = "auto", resolution: int = 0,
                precision: str = "float32", fmt: str = "savedmodel"):
    """The serving module of a model spec for format `fmt`.

    Args:
      kind: "icolorit", "coltran" or "auto" (iColoriT for its state_dict
        files, 'demo:icolorit' and model directories of it; else a ColTran stage).
      resolution: iColoriT's input size, checked against the model's (0: its own).
      precision: what the model computes in (float32, bfloat16, auto).
      fmt: ONNX and LiteRT get the portable graph (no XLA, no TensorFlow RNG).
    """
    from coltran_tf.icolorit import serving as icolorit_serving

    portable = fmt != "savedmodel"
    if kind == "icolorit" or (kind == "auto" and icolorit_serving.is_icolorit(spec)):
        return icolorit_serving.serving_module(spec, resolution, precision, portable)
    from coltran_tf.sampling import serving as coltran_serving

    return coltran_serving.serving_module(spec, precision, portable)
