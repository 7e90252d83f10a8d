"""coltran-export: iColoriT, the upsamplers and the colorizer as SavedModel, LiteRT
and ONNX, each loaded by its own runtime and compared with the Keras model."""

import importlib.util
import os

import numpy as np
import pytest

from coltran_tf.sampling.serving import ColorizerServing
from coltran_tf.serving import deploy, load_module
from conftest import run_command, write_tiny_models

HAVE = {"savedmodel": True,
        "tflite": importlib.util.find_spec("ai_edge_litert") is not None,
        "onnx": all(importlib.util.find_spec(m) for m in ("tf2onnx", "onnxruntime"))}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A micro iColoriT model directory."""
    import keras

    from coltran_tf.icolorit import convert
    from coltran_tf.icolorit.model import build_icolorit

    root = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    convert.save(build_icolorit("micro"), str(root / "icolorit"))
    return root


def _artefact(tmp_path, name, fmt):
    return str(tmp_path / (name if fmt == "savedmodel" else f"{name}.{fmt}"))


def _needs(fmt):
    return pytest.mark.skipif(not HAVE[fmt], reason=f"the export extra is not installed "
                              f"({deploy.EXTRA})")


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=_needs(f)) for f in deploy.FORMATS])
def test_icolorit_exports_and_its_runtimes_match_keras(models, tmp_path, fmt):
    """The command, then independently of its own check: another input, the
    runtime again."""
    output = _artefact(tmp_path, "icolorit", fmt)
    result = run_command("coltran_tf.commands.export", f"--model={models / 'icolorit'}",
                         f"--format={fmt}", f"--output={output}")
    assert result.returncode == 0, result.stderr
    assert os.path.exists(output) and "max |difference| vs Keras" in result.stdout
    module = load_module(str(models / "icolorit"))
    inputs = module.example_inputs(seed=7)
    expected = np.asarray(module.serve(**inputs)["ab"])
    actual = deploy.RUNNERS[fmt](output, inputs)
    assert set(actual) == {"ab"} and actual["ab"].shape == expected.shape
    np.testing.assert_allclose(actual["ab"], expected, atol=1e-2)


@pytest.mark.parametrize("name", ["color_upsampler", pytest.param(
    "spatial_upsampler", marks=pytest.mark.slow)])  # one code path; -m slow runs both
def test_upsamplers_export_to_every_format_and_their_runtimes_match_keras(tmp_path, name):
    """One tiny model directory, loaded as the command loads it, its three
    formats through deploy.export in process (the command's own path is
    iColoriT's and the colorizer's tests), then another input through each
    runtime again. Formats whose extra is missing are skipped, with the reason,
    after the others ran."""
    write_tiny_models(tmp_path / "models", stages=(name,), low_resolution=8,
                      spatial_resolution=16)
    module = load_module(str(tmp_path / "models" / name))
    assert module.name == name and module.exact == ("argmax",)  # an upsampler's module
    inputs = module.example_inputs(seed=7)
    expected = {k: np.asarray(v) for k, v in module.serve(**inputs).items()}
    for fmt in [f for f in deploy.FORMATS if HAVE[f]]:
        output = _artefact(tmp_path, name, fmt)
        report = deploy.export(module, fmt, output)
        assert report["outputs"]["argmax"]["agreement"] >= 0.999, fmt
        assert report["outputs"]["logits"]["max_abs_diff"] <= module.tolerances["logits"], fmt
        actual = deploy.RUNNERS[fmt](output, inputs)
        assert set(actual) == {"argmax", "logits"}, fmt
        assert actual["logits"].shape == expected["logits"].shape, fmt
        np.testing.assert_allclose(actual["logits"], expected["logits"], atol=1e-3,
                                   err_msg=fmt)
        assert (actual["argmax"] == expected["argmax"]).mean() > 0.999, fmt
    if not all(HAVE.values()):
        pytest.skip(f"the export extra is not installed ({deploy.EXTRA}): only "
                    f"{[f for f in deploy.FORMATS if HAVE[f]]} ran")


def test_the_icolorit_signature_is_the_models_forward(models):
    """lightness, hint_ab, hint_mask (Lab units) -> ab: what colorize computes."""
    from coltran_tf.icolorit.color import AB_NORM, L_CENT, L_NORM
    from coltran_tf.icolorit.convert import load_saved

    model = load_saved(str(models / "icolorit"))
    module = load_module(str(models / "icolorit"))
    inputs = module.example_inputs(seed=3)
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
    result = run_command("coltran_tf.commands.export", f"--model={models / 'icolorit'}",
                         f"--output={output}")
    assert result.returncode == 2 and "differs from the Keras model" in result.stderr
    assert not output.exists() and os.listdir(tmp_path) == []


def test_icolorit_export_takes_the_precision_and_its_own_resolution(models, tmp_path):
    """--precision=bfloat16: the artefact computes in bfloat16 (the command's
    check holds it to the bfloat16 Keras model; it differs from float32).
    --resolution takes the model's own size and names it for any other."""
    from coltran_tf.icolorit.convert import load_saved

    size = load_saved(str(models / "icolorit")).image_size
    output = tmp_path / "bfloat16"
    result = run_command("coltran_tf.commands.export", f"--model={models / 'icolorit'}",
                         "--precision=bfloat16", f"--resolution={size}", f"--output={output}")
    assert result.returncode == 0, result.stderr
    float32 = load_module(str(models / "icolorit"))
    inputs = float32.example_inputs(seed=5)
    got = deploy.run_savedmodel(str(output), inputs)["ab"]
    assert got.dtype == np.float32
    difference = np.abs(got - np.asarray(float32.serve(**inputs)["ab"])).max()
    assert 0 < difference < 5, difference  # bfloat16 rounding, in ab units
    wrong = run_command("coltran_tf.commands.export", f"--model={models / 'icolorit'}",
                        f"--resolution={size // 2}", f"--output={tmp_path / 'w'}")
    assert wrong.returncode == 2 and f"takes {size}x{size} inputs" in wrong.stderr
    assert not (tmp_path / "w").exists()


def test_clear_errors_for_a_missing_extra_and_an_existing_output(models, tmp_path,
                                                                monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tf2onnx", None)  # as if not installed
    missing = run_command("coltran_tf.commands.export", f"--model={models / 'icolorit'}",
                          "--format=onnx", f"--output={tmp_path / 'm.onnx'}")
    assert missing.returncode == 2 and "pip install 'coltran_tf[export]'" in missing.stderr
    (tmp_path / "taken").mkdir()
    taken = run_command("coltran_tf.commands.export", f"--model={models / 'icolorit'}",
                        f"--output={tmp_path / 'taken'}")
    assert taken.returncode == 2 and "--overwrite" in taken.stderr


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    """A tiny 8x8 colorizer's model directory and its Keras model (built once)."""
    import keras

    from coltran_tf.checkpoints.native import save_model_dir
    from coltran_tf.models.builder import build_model
    from conftest import tiny_config

    keras.utils.set_random_seed(3)
    config = tiny_config("colorizer", low_resolution=8)
    model = build_model(config)
    path = tmp_path_factory.mktemp("colorizer") / "colorizer"
    save_model_dir(model, config, str(path))
    return path, model


def _gray(model, batch):
    side = model.resolution
    return np.random.default_rng(batch).integers(0, 256, (batch, side, side, 1), np.int32)


def test_the_colorizer_savedmodel_serves_the_cached_sampler(colorizer, tmp_path):
    """sample(gray, seeds, temperature, top_k, top_p) -> coarse, proba: what
    sample_colorizer_cached draws, through tf.saved_model.load, at any batch
    size; bad requests are refused by the graph. (In process, so that the
    sampler's XLA compilations are shared; export()'s own check of a colorizer
    runs in the ONNX test, the command in the tests below.)"""
    import tensorflow as tf

    from coltran_tf.sampling.cached_sampler import sample_colorizer_cached

    _, model = colorizer
    deploy.save_savedmodel(ColorizerServing(model), str(tmp_path / "colorizer"))
    loaded = tf.saved_model.load(str(tmp_path / "colorizer"))
    assert set(loaded.signatures) == {"sample", "serving_default"}
    sample = loaded.signatures["sample"]

    def draw(gray, seeds, temperature=0.8, top_k=20, top_p=0.9):
        return sample(gray=tf.constant(gray), seeds=tf.constant(seeds, tf.int64),
                      temperature=tf.constant(temperature), top_k=tf.constant(top_k),
                      top_p=tf.constant(top_p))

    gray = _gray(model, 2)
    got = draw(gray, [3, 4])
    want = sample_colorizer_cached(model, gray, seeds=[3, 4], temperature=0.8, top_k=20,
                                   top_p=0.9)
    assert got["coarse"].dtype == tf.uint8 and got["proba"].shape == want["proba"].shape
    np.testing.assert_array_equal(got["coarse"].numpy(), want["auto_sample"])
    np.testing.assert_allclose(got["proba"].numpy(), want["proba"], atol=1e-6)
    # One image alone draws what it drew in the batch: per-image seeds, any batch size.
    np.testing.assert_array_equal(draw(gray[1:], [4])["coarse"].numpy()[0],
                                  got["coarse"].numpy()[1])
    for bad, message in (({"seeds": [1]}, "seeds must hold one seed per image"),
                         ({"temperature": 0.0}, "temperature must be > 0"),
                         ({"top_k": 600}, "top_k must be <= 512"),
                         ({"top_p": 1.5}, r"top_p must be in \(0, 1\]")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            draw(gray, **{"seeds": [3, 4], **bad})


@pytest.mark.slow  # the upsamplers' ONNX test covers the format; -m slow runs it
@pytest.mark.skipif(not HAVE["onnx"], reason=f"the export extra is not installed ({deploy.EXTRA})")
def test_the_colorizer_onnx_takes_uniforms_and_draws_the_same_samples(colorizer, tmp_path):
    from coltran_tf.sampling.cached_sampler import sample_colorizer_cached, seed_uniforms

    path, model = colorizer
    output = tmp_path / "colorizer.onnx"
    result = run_command("coltran_tf.commands.export", f"--model={path}", "--format=onnx",
                         f"--output={output}")
    assert result.returncode == 0, result.stderr
    assert "coarse: max |difference| vs Keras 0, equal values 100.00%" in result.stdout
    gray = _gray(model, 2)
    got = deploy.run_onnx(str(output), {
        "gray": gray, "uniforms": seed_uniforms(model, [5, 6]),
        "temperature": np.float32(0.8), "top_k": np.int32(20), "top_p": np.float32(0.9)})
    # The plain-graph sampler, which the ONNX loop is (the XLA one samples the
    # same: test_cached_sampler's test_graph_and_xla_samplers_agree).
    want = sample_colorizer_cached(model, gray, seeds=[5, 6], temperature=0.8, top_k=20,
                                   top_p=0.9, jit_compile=False)
    np.testing.assert_array_equal(got["coarse"], want["auto_sample"])
    np.testing.assert_allclose(got["proba"], want["proba"], atol=1e-5)


@pytest.mark.slow  # a whole LiteRT conversion attempt; -m slow runs it
@pytest.mark.skipif(not HAVE["tflite"],
                    reason=f"the export extra is not installed ({deploy.EXTRA})")
def test_the_colorizer_litert_failure_is_named_and_leaves_nothing(colorizer, tmp_path):
    """The measured failure of TensorFlow 2.21's LiteRT converter on the sampling
    loop (README, Deploy). Should a converter take it, this test fails: then
    compare its samples like the ONNX test does and document it."""
    _, model = colorizer
    with pytest.raises(deploy.ExportError) as error:
        deploy.export(ColorizerServing(model, portable=True), "tflite",
                      str(tmp_path / "colorizer.tflite"))
    assert "does not convert to LiteRT" in str(error.value)
    assert "operand #1 does not dominate this use" in str(error.value)
    assert "--format=savedmodel or --format=onnx" in str(error.value)
    assert os.listdir(tmp_path) == []


def test_the_formats_ask_a_serving_module_only_its_interface(tmp_path):
    """deploy.py saves, runs and compares any ServingModule by its interface
    (signatures, example inputs, tolerances): it names no model family."""
    import tensorflow as tf

    from coltran_tf.utils.serving import ServingModule

    class Doubler(ServingModule):
        tolerances, exact = {"y": 1e-6}, ("n",)

        def __init__(self):
            super().__init__(name="colorizer")  # a misleading name changes nothing
            self.serve = tf.function(lambda x: {"y": 2.0 * x, "n": tf.cast(x > 0, tf.int32)},
                                     input_signature=[tf.TensorSpec([None, 3], tf.float32,
                                                                    name="x")])

        def example_inputs(self, seed=0):
            return {"x": np.random.default_rng(seed).normal(size=(2, 3)).astype(np.float32)}

    report = deploy.export(Doubler(), "savedmodel", str(tmp_path / "doubler"))
    assert report["outputs"]["y"]["max_abs_diff"] == 0 and report["outputs"]["n"]["agreement"] == 1
    assert not [word for word in ("colorizer", "icolorit", "upsampler", "coltran_core")
                if word in _code_without_docstrings(deploy.__file__)]


def _code_without_docstrings(path: str) -> str:
    import ast

    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                and isinstance(first.value.value, str):
            body[0] = ast.Pass()
    return ast.unparse(tree).lower()
