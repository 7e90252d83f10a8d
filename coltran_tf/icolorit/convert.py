"""Official iColoriT weights (PyTorch state_dict layout) -> our model.

NumPy in, no PyTorch needed: `state_dict` is a mapping key -> array, e.g. an
.npz written from the official checkpoint. `load_pth` reads a released .pth
when PyTorch happens to be installed. `load_icolorit` also takes an http(s)://
or gs:// URL of either: fetched once, converted, and cached as a model
directory of ours (no PyTorch needed after the first .pth).
"""

import json
import os
import zipfile

import numpy as np

from coltran_tf.icolorit.model import IColoriT, build_icolorit
from coltran_tf.utils.download import FetchError, fetch_cached, is_url
from coltran_tf.utils.files import write_json
from coltran_tf.utils.precision import model_precision

CACHE_KIND = "icolorit"

SKIPPED_SUFFIXES = ("relative_position_index",)  # constant buffers, recomputed


class WeightsError(ValueError):
    """A state_dict that does not fit the model (names the keys and the fix)."""


def architecture(state_dict) -> dict:
    """Constructor arguments of the model a state_dict was saved from."""
    try:
        hidden, _, patch, _ = state_dict["patch_embed.proj.weight"].shape
        depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
        table, heads = state_dict["blocks.0.attn.rpb_table"].shape
        mlp = state_dict["blocks.0.mlp.fc1.weight"].shape[0] // hidden
    except (KeyError, ValueError) as error:
        raise WeightsError(f"Not an iColoriT state_dict with the CNN head and relative "
                           f"position bias (missing or odd {error}).") from None
    grid = (int(round(np.sqrt(table))) + 1) // 2
    return {"patch_size": int(patch), "hidden_size": int(hidden), "depth": depth,
            "num_heads": int(heads), "mlp_ratio": int(mlp), "image_size": int(grid * patch)}


def _targets(model: IColoriT) -> dict:
    """Official key -> (our variable, transform from the PyTorch array)."""
    linear = lambda w: w.T  # noqa: E731  (out, in) -> (in, out)
    conv = lambda w: np.transpose(w, (2, 3, 1, 0))  # noqa: E731  (out, in, kh, kw) -> HWIO
    same = lambda w: w  # noqa: E731
    targets = {"patch_embed.proj.weight": (model.patch_embed.kernel, conv),
               "patch_embed.proj.bias": (model.patch_embed.bias, same),
               "norm.weight": (model.norm.gamma, same), "norm.bias": (model.norm.beta, same),
               "head.head.weight": (model.head.conv.kernel, conv),
               "head.head.bias": (model.head.conv.bias, same)}
    for i, block in enumerate(model.blocks):
        prefix = f"blocks.{i}."
        targets.update({
            prefix + "norm1.weight": (block.norm1.gamma, same),
            prefix + "norm1.bias": (block.norm1.beta, same),
            prefix + "attn.q_bias": (block.attn.q_bias, same),
            prefix + "attn.v_bias": (block.attn.v_bias, same),
            prefix + "attn.rpb_table": (block.attn.rpb_table, same),
            prefix + "attn.qkv.weight": (block.attn.qkv.kernel, linear),
            prefix + "attn.proj.weight": (block.attn.proj.kernel, linear),
            prefix + "attn.proj.bias": (block.attn.proj.bias, same),
            prefix + "norm2.weight": (block.norm2.gamma, same),
            prefix + "norm2.bias": (block.norm2.beta, same),
            prefix + "mlp.fc1.weight": (block.fc1.kernel, linear),
            prefix + "mlp.fc1.bias": (block.fc1.bias, same),
            prefix + "mlp.fc2.weight": (block.fc2.kernel, linear),
            prefix + "mlp.fc2.bias": (block.fc2.bias, same),
        })
    return targets


def load_state_dict(model: IColoriT, state_dict) -> IColoriT:
    """Assigns an official state_dict to a built model; strict like the official
    loaders: every key used, every variable set, every shape equal."""
    targets = _targets(model)
    keys = {k for k in state_dict if not k.endswith(SKIPPED_SUFFIXES)}
    missing, unexpected = sorted(set(targets) - keys), sorted(keys - set(targets))
    if missing or unexpected:
        raise WeightsError(
            f"The state_dict does not match this iColoriT model: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}. Build the model from the weights "
            "(model_from_state_dict) or pick the preset they were trained with.")
    values = []
    for key, (variable, transform) in targets.items():
        value = transform(np.asarray(state_dict[key], np.float32))
        if tuple(value.shape) != tuple(variable.shape):
            raise WeightsError(f"{key}: shape {tuple(state_dict[key].shape)} gives "
                               f"{tuple(value.shape)}, the model has {tuple(variable.shape)}.")
        values.append((variable, value))
    for variable, value in values:
        variable.assign(value)
    return model


def model_from_state_dict(state_dict, precision: str = "float32") -> IColoriT:
    """A model of the state_dict's own architecture with its weights."""
    return load_state_dict(build_icolorit(architecture(state_dict), precision), state_dict)


def load_pth(path: str) -> dict:
    """A released .pth checkpoint -> {key: numpy array} (needs PyTorch)."""
    try:
        import torch
    except ImportError:
        raise WeightsError(f"{path} is a PyTorch checkpoint and PyTorch is not installed. "
                           "Install it (pip install torch) or convert the file to .npz on a "
                           "machine that has it: numpy.savez(out, **{k: v.numpy() for k, v "
                           "in torch.load(path)['model'].items()}).") from None
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    return {key: value.detach().cpu().numpy() for key, value in state.items()}


def read_state_dict(path: str) -> dict:
    """A state_dict from .npz (our converter's input) or .pth (needs PyTorch)."""
    if not os.path.exists(path):
        raise WeightsError(f"No weights file at {path}.")
    if path.endswith((".pth", ".pt")):
        return load_pth(path)
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise WeightsError(f"{path} is not a readable .npz state_dict ({error}).") from None


def load_icolorit(path: str, report=print, precision: str | None = None) -> IColoriT:
    """Any iColoriT weights: official .npz/.pth state_dicts, our own saved model
    directory (config.json + model.weights.h5), 'demo' (the bundled demo weights),
    or a URL of a state_dict file
    (fetched and converted once into the cache; see fetch_weights). `precision`
    (float32, bfloat16, auto) overrides a saved model's own (float32 for
    state_dicts)."""
    from coltran_tf import demo

    if demo.is_demo(path):
        try:
            path = demo.resolve(path, "icolorit")
        except ValueError as error:
            raise WeightsError(str(error)) from None
    if is_url(path):
        return load_saved(fetch_weights(path, report), precision)
    if os.path.isdir(path):
        return load_saved(path, precision)
    return model_from_state_dict(read_state_dict(path), precision or "float32")


def _state_dict_kind(path: str, url: str) -> str:
    """'npz' or 'pth': by the URL's file name, else by content."""
    name = url.split("?")[0].lower()
    if name.endswith((".npz", ".pth", ".pt")):
        return "npz" if name.endswith(".npz") else "pth"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if names and all(name.endswith(".npy") for name in names):
            return "npz"
    return "pth"  # torch.save writes a zip of data.pkl, or a bare pickle


def _convert_download(download: str, staging: str, info: dict) -> None:
    suffix = ".npz" if _state_dict_kind(download, info["url"]) == "npz" else ".pth"
    os.rename(download, download + suffix)
    model = model_from_state_dict(read_state_dict(download + suffix))
    save(model, staging)
    write_json(os.path.join(staging, "metadata.json"),
               {"source": info["url"], "sha256": info["sha256"], "bytes": info["bytes"]})


def fetch_weights(url: str, report=print) -> str:
    """The cached model directory of the state_dict at `url` (.npz, or .pth with
    PyTorch for the first conversion); WeightsError naming the URL, the cache
    path and the manual alternative when that fails (nothing is cached then)."""
    manual = ("To do it by hand: download the file (Google Drive links: `pip install "
              "gdown; gdown ID`), and pass its path as --weights / --icolorit_weights.")
    try:
        return fetch_cached(url, CACHE_KIND, _convert_download, manual, report)
    except FetchError as error:
        raise WeightsError(str(error)) from None


def save(model: IColoriT, directory: str) -> None:
    """Our format: config.json (constructor arguments and the precision the
    model computes in) + model.weights.h5 (float32 in either precision)."""
    os.makedirs(directory, exist_ok=True)
    config = {k: v for k, v in model.get_config().items()
              if k in ("patch_size", "hidden_size", "depth", "num_heads", "mlp_ratio",
                       "image_size")}
    config["precision"] = model_precision(model)
    model.save_weights(os.path.join(directory, "model.weights.h5"))
    write_json(os.path.join(directory, "config.json"), config)


COMPACT_WEIGHTS = "model.weights.npz"  # float16 by variable path (save_compact)


def save_compact(model: IColoriT, directory: str) -> None:
    """config.json + model.weights.npz: the weights as float16 (half the size of
    model.weights.h5; what the bundled demo weights use). Loaded as float32."""
    os.makedirs(directory, exist_ok=True)
    save(model, directory)
    os.remove(os.path.join(directory, "model.weights.h5"))
    arrays = {w.path: np.asarray(w, np.float16) for w in model.weights}
    staging = os.path.join(directory, "tmp." + COMPACT_WEIGHTS)
    np.savez_compressed(staging, **arrays)
    os.replace(staging, os.path.join(directory, COMPACT_WEIGHTS))


def load_saved(directory: str, precision: str | None = None) -> IColoriT:
    config_path = os.path.join(directory, "config.json")
    weights_path = os.path.join(directory, "model.weights.h5")
    compact_path = os.path.join(directory, COMPACT_WEIGHTS)
    if not (os.path.exists(config_path)
            and (os.path.exists(weights_path) or os.path.exists(compact_path))):
        raise WeightsError(f"{directory} holds no iColoriT model (expected config.json and "
                           "model.weights.h5 or .npz, as written by training or "
                           "icolorit.convert).")
    with open(config_path) as f:
        config = json.load(f)
    saved_precision = config.pop("precision", "float32")
    model = build_icolorit(config, precision or saved_precision)
    if os.path.exists(weights_path):
        model.load_weights(weights_path)
        return model
    with np.load(compact_path) as arrays:
        missing = [w.path for w in model.weights if w.path not in arrays.files]
        if missing:
            raise WeightsError(f"{compact_path} does not fit {config_path}: no values for "
                               f"{missing[:3]} ({len(missing)} in all).")
        for weight in model.weights:
            value = arrays[weight.path]
            if value.shape != tuple(weight.shape):
                raise WeightsError(f"{compact_path}: {weight.path} has shape {value.shape}, "
                                   f"the model's is {tuple(weight.shape)}.")
            weight.assign(value.astype(np.float32))
    return model
