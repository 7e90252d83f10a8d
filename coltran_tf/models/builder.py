"""The one place where a config becomes a model (the original's key names).

`build_model(config)` accepts our `configs/*.py` ConfigDicts and the original
ColTran config dicts unchanged (for example the `config` of a fixture's
layout.json), validates the model keys, and returns a built Keras model.
"""

from collections.abc import Mapping

import keras
import ml_collections

from coltran_tf.configs import stages
from coltran_tf.layers.conditioning import CONDITIONING_DEFAULTS
from coltran_tf.models.colorizer import ColTranCore
from coltran_tf.utils import precision

# Keys the original configs may omit, with the original's defaults.
_OPTIONAL = {"dropout": 0.0, "skip": True, "stage": "encoder_decoder"}
_ENCODER_KEYS = {"hidden_size", "ff_size", "num_heads", "num_encoder_layers", "dropout"}
_DECODER_KEYS = {"hidden_size", "ff_size", "num_heads", "num_outer_layers",
                 "num_inner_layers", "dropout", "skip", "resolution"} | set(CONDITIONING_DEFAULTS)
_CORE_KEYS = {"name", "hidden_size", "stage", "resolution", "encoder", "decoder"}
_UPSAMPLER_KEYS = {"name", "hidden_size", "ff_size", "num_heads", "num_encoder_layers",
                   "dropout", "resolution"}


def _as_dict(config) -> dict:
    if isinstance(config, ml_collections.ConfigDict):
        return config.to_dict()
    if isinstance(config, Mapping):
        return {k: _as_dict(v) if isinstance(v, Mapping) else v for k, v in config.items()}
    raise TypeError(f"Expected a ConfigDict or a dict, got {type(config).__name__}.")


def _check_keys(section: str, values: dict, allowed: set, required: set) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"Unknown key(s) {unknown} in config.{section}; "
                         f"valid keys are {sorted(allowed)}.")
    missing = sorted(required - set(values))
    if missing:
        raise ValueError(f"Missing key(s) {missing} in config.{section}.")


def _get(values: dict, key: str):
    return values[key] if key in values else _OPTIONAL[key]


def model_resolution(config) -> int:
    """Side of the square canvas the model works on (64 or the spatial one)."""
    config = _as_dict(config)
    name = config["model"]["name"]
    if name == "spatial_upsampler" or not config.get("downsample", True):
        return int(config["resolution"][0])
    return int(config["downsample_res"])


def model_kwargs(config) -> tuple[type, dict]:
    """(model class, constructor arguments) for a full experiment config."""
    config = _as_dict(config)
    model_cfg = config["model"]
    cls = _model_class(stages.of_model_name(model_cfg.get("name")))
    resolution = model_resolution(config)
    downsample = bool(config.get("downsample", True))
    if cls is ColTranCore:
        return ColTranCore, _colorizer_kwargs(config, model_cfg, resolution, downsample)
    _check_keys("model", model_cfg, _UPSAMPLER_KEYS,
                {"hidden_size", "ff_size", "num_heads", "num_encoder_layers"})
    kwargs = dict(resolution=resolution, hidden_size=model_cfg["hidden_size"],
                  ff_size=model_cfg["ff_size"], num_heads=model_cfg["num_heads"],
                  num_encoder_layers=model_cfg["num_encoder_layers"],
                  dropout=_get(model_cfg, "dropout"), downsample=downsample,
                  low_resolution=int(config.get("downsample_res", 64)))
    return cls, kwargs


def _model_class(stage) -> type:
    """The Keras model class the stage table names ("module:Class")."""
    return stages.load(stage.model_class)


def _colorizer_kwargs(config, model_cfg, resolution, downsample) -> dict:
    _check_keys("model", model_cfg, _CORE_KEYS, {"encoder", "decoder"})
    enc, dec = model_cfg["encoder"], model_cfg["decoder"]
    _check_keys("model.encoder", enc, _ENCODER_KEYS,
                {"hidden_size", "ff_size", "num_heads", "num_encoder_layers"})
    _check_keys("model.decoder", dec, _DECODER_KEYS,
                {"hidden_size", "ff_size", "num_heads", "num_outer_layers", "num_inner_layers"})
    hidden = model_cfg.get("hidden_size", dec["hidden_size"])
    if not hidden == enc["hidden_size"] == dec["hidden_size"]:
        raise ValueError(
            "config.model.hidden_size, model.encoder.hidden_size and "
            f"model.decoder.hidden_size must agree (got {hidden}, {enc['hidden_size']}, "
            f"{dec['hidden_size']}): the decoder adds the encoder's output to its own.")
    return dict(
        resolution=resolution, hidden_size=hidden, stage=_get(model_cfg, "stage"),
        encoder_ff_size=enc["ff_size"], encoder_num_heads=enc["num_heads"],
        num_encoder_layers=enc["num_encoder_layers"], encoder_dropout=_get(enc, "dropout"),
        decoder_ff_size=dec["ff_size"], decoder_num_heads=dec["num_heads"],
        num_outer_layers=dec["num_outer_layers"], num_inner_layers=dec["num_inner_layers"],
        decoder_dropout=_get(dec, "dropout"), skip=_get(dec, "skip"),
        conditioning={k: dec[k] for k in CONDITIONING_DEFAULTS if k in dec},
        loss_factor=config.get("loss_factor", 0.99),
        encoder_loss_factor=config.get("encoder_loss_factor", 0.01),
        downsample=downsample, source_resolution=int(config["resolution"][0]),
    )


def build_model(config, precision_override: str | None = None) -> keras.Model:
    """Builds (creates all variables of) the model that `config` describes, in
    its `precision` (float32 without the key; `precision_override` wins)."""
    cls, kwargs = model_kwargs(config)
    chosen = precision_override or _as_dict(config).get("precision") or "float32"
    with precision.policy_scope(chosen):  # resolves "auto"
        model = cls(**kwargs)
        model.compute_outputs(model.dummy_inputs())
    return model

