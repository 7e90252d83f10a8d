"""coltran-export: iColoriT and the upsamplers as SavedModel, LiteRT and ONNX,
each loaded by its own runtime and compared with the Keras model."""

import importlib.util
import os

import numpy as np
import pytest

from coltran_tf import deploy
from conftest import run_command, write_tiny_models

HAVE = {"savedmodel": True,
        "tflite": importlib.util.find_spec("ai_edge_litert") is not None,
        "onnx": all(importlib.util.find_spec(m) for m in ("tf2onnx", "onnxruntime"))}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A micro iColoriT model directory and a tiny spatial upsampler's."""
    import keras

    from coltran_tf.icolorit import convert
    from coltran_tf.icolorit.model import build_icolorit

    root = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    convert.save(build_icolorit("micro"), str(root / "icolorit"))
    write_tiny_models(root, stages=("spatial_upsampler",), low_resolution=8,
                      spatial_resolution=16)
    return root


def _artefact(tmp_path, name, fmt):
    return str(tmp_path / (name if fmt == "savedmodel" else f"{name}.{fmt}"))


def _cases():
    """iColoriT in every format by default; the upsamplers' exports (~13 s each:
    their models are built twice) are slow (-m slow)."""
    for name in ("icolorit", "color_upsampler", "spatial_upsampler"):
        for fmt in deploy.FORMATS:
            marks = [pytest.mark.skipif(not HAVE[fmt], reason="the export extra is not "
                                        f"installed ({deploy.EXTRA})")]
            if name != "icolorit":
                marks.append(pytest.mark.slow)
            yield pytest.param(name, fmt, marks=marks, id=f"{name}-{fmt}")


@pytest.mark.parametrize("name, fmt", _cases())
def test_exports_and_their_runtimes_match_keras(models, tmp_path, name, fmt):
    if name == "color_upsampler" and not (models / name).exists():  # built by its first case
        write_tiny_models(models, stages=(name,), low_resolution=8)
    output = _artefact(tmp_path, name, fmt)
    result = run_command("coltran_tf.export", f"--model={models / name}",
                         f"--format={fmt}", f"--output={output}")
    assert result.returncode == 0, result.stderr
    assert os.path.exists(output) and "max |difference| vs Keras" in result.stdout
    # Independently of the command's own check: another input, the runtime again.
    module = deploy.load_module(str(models / name))
    inputs = deploy.example_inputs(module, seed=7)
    expected = {k: np.asarray(v) for k, v in module.serve(**inputs).items()}
    actual = deploy.RUNNERS[fmt](output, inputs)
    if name == "icolorit":
        assert set(actual) == {"ab"} and actual["ab"].shape == expected["ab"].shape
        np.testing.assert_allclose(actual["ab"], expected["ab"], atol=1e-2)
    else:
        assert set(actual) == {"argmax", "logits"}
        np.testing.assert_allclose(actual["logits"], expected["logits"], atol=1e-3)
        assert (actual["argmax"] == expected["argmax"]).mean() > 0.999


def test_the_icolorit_signature_is_the_models_forward(models):
    """lightness, hint_ab, hint_mask (Lab units) -> ab: what colorize computes."""
    from coltran_tf.icolorit.color import AB_NORM, L_CENT, L_NORM
    from coltran_tf.icolorit.convert import load_saved

    model = load_saved(str(models / "icolorit"))
    module = deploy.load_module(str(models / "icolorit"))
    inputs = deploy.example_inputs(module, seed=3)
    mask = inputs["hint_mask"]
    network = np.concatenate([(inputs["lightness"] - L_CENT) / L_NORM,
                              inputs["hint_ab"] / AB_NORM * mask, mask], axis=-1)
    np.testing.assert_allclose(np.asarray(module.serve(**inputs)["ab"]),
                               np.asarray(model(network)) * AB_NORM, atol=1e-3)


def test_a_mismatch_is_an_error_and_leaves_nothing(models, tmp_path, monkeypatch):
    run = deploy.RUNNERS["savedmodel"]

    def off_by_one(path, inputs):
        outputs = run(path, inputs)
        return {**outputs, "ab": outputs["ab"] + 1.0}

    monkeypatch.setitem(deploy.RUNNERS, "savedmodel", off_by_one)
    output = tmp_path / "icolorit"
    result = run_command("coltran_tf.export", f"--model={models / 'icolorit'}",
                         f"--output={output}")
    assert result.returncode == 2 and "differs from the Keras model" in result.stderr
    assert not output.exists() and os.listdir(tmp_path) == []


def test_clear_errors_for_the_colorizer_a_missing_extra_and_an_existing_output(
        models, tmp_path, monkeypatch):
    from coltran_tf.checkpoints.native import CONFIG_FILE, config_to_dict
    from coltran_tf.utils.files import write_json
    from conftest import tiny_config

    (tmp_path / "c").mkdir()  # the config is enough to refuse it, before any building
    write_json(str(tmp_path / "c" / CONFIG_FILE), config_to_dict(tiny_config("colorizer")))
    colorizer = run_command("coltran_tf.export", f"--model={tmp_path / 'c'}",
                            f"--output={tmp_path / 'x'}")
    assert colorizer.returncode == 2 and "autoregressive sampler is not exported" in \
        colorizer.stderr
    monkeypatch.setitem(__import__("sys").modules, "tf2onnx", None)  # as if not installed
    missing = run_command("coltran_tf.export", f"--model={models / 'icolorit'}",
                          "--format=onnx", f"--output={tmp_path / 'm.onnx'}")
    assert missing.returncode == 2 and "pip install 'coltran_tf[export]'" in missing.stderr
    (tmp_path / "taken").mkdir()
    taken = run_command("coltran_tf.export", f"--model={models / 'icolorit'}",
                        f"--output={tmp_path / 'taken'}")
    assert taken.returncode == 2 and "--overwrite" in taken.stderr
