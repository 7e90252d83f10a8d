"""Converting an original ColTran checkpoint into our model format."""

from coltran_tf.checkpoints.native import save_model_dir
from coltran_tf.checkpoints.reference import load_reference_checkpoint
from coltran_tf.models.builder import build_model


def load_reference_model(config, checkpoint: str, use_ema: bool = True):
    """Builds the model `config` describes and loads an original checkpoint into it.

    Returns (model, summary). Raises ReferenceCheckpointMismatch, naming the
    keys, when the checkpoint does not fit the config.
    """
    model = build_model(config)
    summary = load_reference_checkpoint(model, checkpoint, use_ema=use_ema)
    return model, summary


def convert_reference_checkpoint(config, checkpoint: str, output_dir: str,
                                 use_ema: bool = True, overwrite: bool = False) -> dict:
    """Original checkpoint -> `output_dir` in our format; returns a summary."""
    model, summary = load_reference_model(config, checkpoint, use_ema=use_ema)
    metadata = {"source": "original ColTran checkpoint", "checkpoint": summary["checkpoint"],
                "weights": "ema" if use_ema else "raw"}
    summary["output_dir"] = save_model_dir(model, config, output_dir, metadata, overwrite)
    summary["model"] = model.name
    return summary
