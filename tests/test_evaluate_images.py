"""coltran-evaluate: Frechet distance, colourfulness and PSNR, on folders, gen
dirs and TFDS sets, with a small Keras feature extractor (offline)."""

import io
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from coltran_tf.evaluation.evaluate import EvaluationError, evaluate
from coltran_tf.evaluation.image_sets import FolderSet
from coltran_tf.utils import download, frechet, image_metrics
from conftest import REPO_ROOT, run_command


def _covariance(x):
    return np.cov(x, rowvar=False)


def test_frechet_distance_matches_an_independent_computation():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16))
    b = rng.normal(size=(200, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 1.0
    moments = {}
    for name, x, step in (("a", a, 37), ("b", b, 64)):  # streamed in uneven batches
        moments[name] = frechet.RunningMoments()
        for start in range(0, len(x), step):
            moments[name].update(x[start:start + step])
    np.testing.assert_allclose(moments["a"].mean, a.mean(0), atol=1e-12)
    np.testing.assert_allclose(moments["b"].covariance, _covariance(b), atol=1e-10)
    root = np.real(scipy_linalg.sqrtm(_covariance(a) @ _covariance(b)))
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(_covariance(a))
                + np.trace(_covariance(b)) - 2 * np.trace(root))
    assert frechet.fid_from_moments(moments["a"], moments["b"]) == pytest.approx(expected,
                                                                                 rel=1e-9)
    assert frechet.fid_from_moments(moments["a"], moments["a"]) == pytest.approx(0, abs=1e-9)
    shuffled = frechet.RunningMoments()
    shuffled.update(a[rng.permutation(len(a))])
    assert frechet.fid_from_moments(shuffled, moments["b"]) == pytest.approx(expected, rel=1e-9)
    # Closed form for diagonal Gaussians: |mu1 - mu2|^2 + sum (s1 - s2)^2 (s: std devs).
    mu1, mu2, s1, s2 = np.array([0.0, 1, 2]), np.array([1.0, 1, 0]), np.array(
        [1.0, 2, 3]), np.array([2.0, 2, 0.5])
    assert frechet.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2)) == \
        pytest.approx(np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2), rel=1e-12)
    # Fewer vectors than dimensions: singular covariances, still finite and right.
    c, d = rng.normal(size=(10, 32)), rng.normal(size=(10, 32))
    singular = frechet.frechet_distance(c.mean(0), _covariance(c), d.mean(0), _covariance(d))
    root = np.real(scipy_linalg.sqrtm(_covariance(c) @ _covariance(d)))
    assert singular == pytest.approx(np.sum((c.mean(0) - d.mean(0)) ** 2) + np.trace(
        _covariance(c)) + np.trace(_covariance(d)) - 2 * np.trace(root), rel=1e-5)


def _hasler_suesstrunk(rgb) -> float:
    """Hasler and Suesstrunk (2003), eq. 3, written out independently."""
    r, g, b = (np.asarray(rgb, np.float64)[..., i].ravel() for i in range(3))
    rg, yb = np.abs(r - g), np.abs((r + g) / 2 - b)
    return float(np.sqrt(np.var(rg) + np.var(yb))
                 + 0.3 * np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2))


def _independent_fid(extractor_path, generated, reference) -> float:
    """FID of two image lists through the Keras extractor, computed here: its
    documented input (float RGB in [0, 255], resized bilinearly to 32x32) and
    the Frechet distance with scipy's matrix square root."""
    import keras
    import scipy.linalg
    import tensorflow as tf

    model = keras.models.load_model(extractor_path)

    def features(images):
        resized = tf.image.resize(np.asarray(images, np.float32), [32, 32], method="bilinear")
        return np.asarray(model(resized), np.float64)

    a, b = features(generated), features(reference)
    root = np.real(scipy.linalg.sqrtm(_covariance(a) @ _covariance(b)))
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(_covariance(a))
                 + np.trace(_covariance(b)) - 2 * np.trace(root))


def test_colorfulness_and_psnr_by_hand():
    gray = np.full((4, 4, 3), 77, np.uint8)
    assert image_metrics.colorfulness(gray) == 0.0
    image = np.zeros((2, 1, 3))
    image[0, 0], image[1, 0] = (200, 100, 0), (0, 0, 60)  # rg = 100, 0; yb = 150, 60
    rg, yb = np.array([100.0, 0]), np.array([150.0, 60])
    expected = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    assert image_metrics.colorfulness(image) == pytest.approx(expected)
    # Green above red and blue above yellow count as much as the other way round
    # (|R - G|, |(R + G) / 2 - B|), against an independent computation.
    mixed = np.random.default_rng(3).integers(0, 256, (16, 16, 3)).astype(np.float64)
    mixed[:8, :, 1] = np.maximum(mixed[:8, :, 1], mixed[:8, :, 0] + 1)  # G > R in half
    assert image_metrics.colorfulness(mixed) == pytest.approx(_hasler_suesstrunk(mixed))
    assert image_metrics.colorfulness(mixed[..., [1, 0, 2]]) == pytest.approx(
        image_metrics.colorfulness(mixed))  # swapping R and G changes nothing
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 12  # MSE = 144 / 12 = 12
    assert image_metrics.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 12))
    assert image_metrics.psnr(a, a) == float("inf")
    with pytest.raises(ValueError, match="one shape"):
        image_metrics.psnr(a, np.zeros((3, 2, 3)))


@pytest.fixture(scope="module")
def extractor_path(tmp_path_factory):
    """A fixed Keras feature extractor: 32x32 RGB in [0, 255] -> 6 features."""
    import keras

    keras.utils.set_random_seed(0)
    path = str(tmp_path_factory.mktemp("extractor") / "features.keras")
    _extractor_model().save(path)
    return path


def _extractor_model():
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, activation="tanh")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs)


def test_a_bfloat16_feature_extractor_computes_in_float32(tmp_path, extractor_path):
    """FID features never come from reduced precision: an extractor saved under the
    mixed_bfloat16 policy is rebuilt in float32 with the same weights."""
    import keras

    from coltran_tf.evaluation.features import KerasFeatures

    float32 = KerasFeatures(extractor_path)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = _extractor_model()
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(float32.model.get_weights())
    path = str(tmp_path / "mixed.keras")
    mixed.save(path)
    # Loaded, the model itself says float32 while its layers compute in bfloat16.
    plain = keras.saving.load_model(path, compile=False)
    assert {layer.compute_dtype for layer in plain.layers[1:]} == {"bfloat16"}
    loaded = KerasFeatures(path)
    assert {layer.compute_dtype for layer in loaded.model.layers} == {"float32"}
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(images), float32(images))


def _photos(directory, names, shift=0, size=48):
    """Small copies of data/'s photos (optionally with shifted colours)."""
    os.makedirs(directory, exist_ok=True)
    sources = sorted(os.listdir(os.path.join(REPO_ROOT, "data")))
    sources = [s for s in sources if s.endswith((".png", ".jpg"))]
    images = []
    for name, source in zip(names, sources):
        with Image.open(os.path.join(REPO_ROOT, "data", source)) as photo:
            image = np.asarray(photo.convert("RGB").resize((size, size)), np.int32)
        image = np.clip(image + np.array([shift, 0, -shift]), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(directory, name + ".png"))
        images.append(image)
    return images


def test_folders_give_every_metric_and_pair_by_name(tmp_path, extractor_path):
    names = [f"img{i}" for i in range(8)]
    truth = _photos(tmp_path / "reference", names)
    colorized = _photos(tmp_path / "generated", names[::-1], shift=20)  # written in reverse
    output = tmp_path / "out" / "result.json"
    result = run_command("coltran_tf.commands.evaluate", f"--generated={tmp_path / 'generated'}",
                         f"--reference={tmp_path / 'reference'}",
                         f"--feature_extractor={extractor_path}", f"--output={output}",
                         "--batch_size=3")
    assert result.returncode == 0, result.stderr
    with open(output) as f:
        values = json.load(f)
    for key in ("fid", "colorfulness", "colorfulness_reference", "delta_colorfulness", "psnr",
                "num_images", "protocol", "feature_extractor"):
        assert key in values, key
    assert values["num_images"] == 8 and values["pairing"] == "name"
    assert values["feature_extractor"] == "keras:features.keras"
    assert values["fid"] == pytest.approx(_independent_fid(extractor_path, colorized, truth),
                                          rel=1e-3, abs=1e-6)
    by_name = dict(zip(names[::-1], colorized))
    expected = np.mean([image_metrics.psnr(by_name[n], t) for n, t in zip(names, truth)])
    assert values["psnr"] == pytest.approx(expected)
    # Colourfulness of the written files, computed independently (not by the
    # command's own function), and its difference to the reference's.
    assert values["colorfulness"] == pytest.approx(
        np.mean([_hasler_suesstrunk(image) for image in colorized]))
    assert values["colorfulness_reference"] == pytest.approx(
        np.mean([_hasler_suesstrunk(image) for image in truth]))
    assert values["delta_colorfulness"] == pytest.approx(
        abs(values["colorfulness"] - values["colorfulness_reference"]))
    assert "| FID |" in result.stdout and values["warnings"] == []  # 8 images > 6 features
    same = run_command("coltran_tf.commands.evaluate", f"--generated={tmp_path / 'reference'}",
                       f"--reference={tmp_path / 'reference'}", "--metrics=fid",
                       f"--feature_extractor={extractor_path}", f"--output={output}")
    assert same.returncode == 0, same.stderr
    with open(output) as f:
        assert json.load(f)["fid"] == pytest.approx(0.0, abs=1e-6)


def test_gen_dirs_pair_by_position_with_several_samples(tmp_path, extractor_path):
    from coltran_tf.sampling import records

    truth = _photos(tmp_path / "reference", [f"{i:02d}" for i in range(5)], size=32)
    samples = [[np.clip(t.astype(int) + k * 9, 0, 255) for k in range(2)] for t in truth]
    os.makedirs(tmp_path / "gen")
    records.write_records(str(tmp_path / "gen" / "gen0.tfrecords"),
                          [np.concatenate(s[:2], axis=1) for s in samples[:3]], [0, 1, 2])
    records.write_records(str(tmp_path / "gen" / "gen1.tfrecords"),
                          [np.concatenate(s, axis=1) for s in samples[3:]], [3, 4])
    result = run_command("coltran_tf.commands.evaluate", f"--generated={tmp_path / 'gen'}",
                         f"--reference={tmp_path / 'reference'}", "--num_samples=2",
                         f"--feature_extractor={extractor_path}",
                         f"--output={tmp_path / 'r.json'}")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "r.json") as f:
        values = json.load(f)
    assert values["num_images"] == 10 and values["num_reference_images"] == 5
    assert values["pairing"] == "index" and values["psnr_pairs"] == 10
    expected = [image_metrics.psnr(s, t) for pair, t in zip(samples, truth) for s in pair]
    finite = [p for p in expected if np.isfinite(p)]
    assert values["psnr"] == pytest.approx(np.mean(finite))
    assert values["psnr_identical"] == len(expected) - len(finite) == 5


def test_tfds_sets_and_protocol_presets(tmp_path, extractor_path):
    import tensorflow_datasets as tfds

    os.makedirs(tmp_path / "generated")
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        result = run_command("coltran_tf.commands.evaluate", "--protocol=coltran_fid5k",
                             f"--generated={REPO_ROOT}/data",
                             f"--feature_extractor={extractor_path}",
                             f"--output={tmp_path / 'r.json'}")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "r.json") as f:
        values = json.load(f)
    assert values["protocol"] == "coltran_fid5k" and values["preprocess"] == "center_crop_256"
    assert values["num_images"] == 15 and values["num_reference_images"] == 6
    assert "psnr" not in values and values["fid"] > 0
    assert "expects 5000 generated images" in result.stdout
    assert values["reference"] == ("TFDS imagenet2012 split validation[10000:15000] "
                                   "(size known when read)"), values["reference"]


def test_bad_input_gets_clear_errors_and_nothing_is_dropped_silently(tmp_path, extractor_path):
    names = [f"img{i}" for i in range(4)]
    _photos(tmp_path / "reference", names)
    _photos(tmp_path / "generated", names[:3], shift=10)
    args = [f"--reference={tmp_path / 'reference'}", f"--feature_extractor={extractor_path}"]
    missing = run_command("coltran_tf.commands.evaluate", f"--generated={tmp_path / 'generated'}",
                          *args)
    assert missing.returncode == 2 and "no partner" in missing.stderr
    assert "1 reference" in missing.stderr
    # An unreadable file is counted, named and left out.
    with open(tmp_path / "generated" / "img3.png", "wb") as f:
        f.write(b"not a png")
    broken = run_command("coltran_tf.commands.evaluate", f"--generated={tmp_path / 'generated'}",
                         *args, "--metrics=fid,colorfulness", f"--output={tmp_path / 'r.json'}")
    assert broken.returncode == 0, broken.stderr
    with open(tmp_path / "r.json") as f:
        values = json.load(f)
    assert values["unreadable"] == {"generated": 1, "reference": 0}
    assert "img3.png" in values["unreadable_files"]["generated"][0]
    assert values["num_images"] == 3 and "could not be read" in broken.stderr
    assert "rank below its dimension" in broken.stderr  # 3 images, 6-d features
    # Sizes that differ within a pair.
    os.makedirs(tmp_path / "small")
    for name in names:
        shutil.copy(tmp_path / "reference" / f"{name}.png", tmp_path / "small")
    Image.new("RGB", (20, 20)).save(tmp_path / "small" / "img0.png")
    sized = run_command("coltran_tf.commands.evaluate", f"--generated={tmp_path / 'small'}",
                        *args, "--metrics=psnr")
    assert sized.returncode == 2 and "needs equal sizes" in sized.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run_command("coltran_tf.commands.evaluate", f"--generated={empty}", *args,
                          "--metrics=colorfulness")
    assert nothing.returncode == 2 and "No readable images" in nothing.stderr
    typo = run_command("coltran_tf.commands.evaluate", f"--generated={tmp_path / 'generated'}",
                       *args, "--metrics=fid,sharpness")
    assert typo.returncode == 2 and "sharpness" in typo.stderr
    nowhere = run_command("coltran_tf.commands.evaluate", f"--generated={tmp_path / 'nope'}", *args)
    assert nowhere.returncode == 2 and "no such folder" in nowhere.stderr


def _fake_inception_archive(path):
    """A .tgz holding a GraphDef with the FID Inception's input and output names
    (ExpandDims:0 -> pool_3:0, 2048-d): the mean colour, tiled."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32,
                                                name="ExpandDims")])
    def graph(images):
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        return tf.identity(tf.tile(mean, [1, 1, 1, 683])[..., :2048], name="pool_3")

    graph_def = graph.get_concrete_function().graph.as_graph_def()
    data = graph_def.SerializeToString()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("classify_image_graph_def.pb")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_inception_is_fetched_once_checked_and_offline_errors_name_the_fix(tmp_path,
                                                                           monkeypatch):
    import functools
    import http.server
    import threading

    from coltran_tf.evaluation import features

    monkeypatch.setenv("COLTRAN_TF_HOME", str(tmp_path / "cache"))
    serve = tmp_path / "serve"
    serve.mkdir()
    _fake_inception_archive(serve / "inception-2015-12-05.tgz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/inception-2015-12-05.tgz"
    try:
        monkeypatch.setenv(features.URL_ENV, url)
        extractor = features.load_feature_extractor("inception", report=lambda line: None)
    finally:
        server.shutdown()
        server.server_close()
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3)).astype(np.float32)
    out = extractor(images)
    assert out.shape == (3, 2048)
    np.testing.assert_allclose(out[:, 0], images.mean(axis=(1, 2))[:, 0], rtol=1e-5)
    # Cached: the server is gone, and loading still works ...
    assert features.load_feature_extractor("inception", report=lambda line: None).dimensions \
        == 2048
    extractor.dimensions = 1000  # a graph whose pool_3 is not the FID one
    with pytest.raises(features.FeatureError) as error:
        extractor(images)
    assert str(error.value) == ("pool_3 gave 2048 values per image, not 1000: not the FID "
                                "Inception graph.")
    # ... until the cached graph changes: the hash check refuses it.
    graph = features.inception_graph(url)
    with open(graph, "ab") as f:
        f.write(b"\0")
    with pytest.raises(features.FeatureError, match="changed since it was fetched"):
        features.inception_graph(url)
    # Offline with no cache: the error names the URL and the manual route.
    monkeypatch.setenv(features.URL_ENV, url.replace("inception-2015", "missing"))
    with pytest.raises(download.FetchError, match="classify_image_graph_def.pb") as error:
        features.load_feature_extractor("inception", report=lambda line: None)
    assert "missing-12-05.tgz" in str(error.value) and "--feature_extractor=" in str(error.value)


def test_folder_sets_refuse_ambiguous_names(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(EvaluationError, match="two images with one name"):
        FolderSet(str(tmp_path))
    photos = FolderSet(os.path.join(REPO_ROOT, "data"))
    with pytest.raises(EvaluationError, match="unknown"):
        evaluate(photos, photos, ["sharpness"])


def test_colorize_samples_pair_with_their_photo(tmp_path):
    """colorize --num_samples=K writes NAME_s0..NAME_s<K-1>: each pairs with NAME,
    and NAME's statistics count once."""
    _photos(tmp_path / "reference", ["a", "b"])
    _photos(tmp_path / "generated", ["a_s0", "a_s1", "b_s0", "b_s1"], shift=30)
    result = evaluate(FolderSet(str(tmp_path / "generated")),
                      FolderSet(str(tmp_path / "reference")), ["psnr", "colorfulness"])
    assert result["psnr_pairs"] == 4 and result["num_images"] == 4
    assert result["num_reference_images"] == 2 and result["pairing"] == "name"
    # A protocol's subset (e.g. ddcolor_val5k's 5,000 files) keeps the samples of its names.
    subset = FolderSet(str(tmp_path / "generated"), names={"a"})
    assert sorted(subset.keys()) == ["a_s0", "a_s1"] and "2 of them" in subset.description


def test_the_results_table_has_a_column_per_metric_present():
    from coltran_tf.evaluation.evaluate import markdown_table

    result = {"protocol": "ddcolor_val5k", "fid": 12.345, "colorfulness": 30.0,
              "colorfulness_reference": 35.5, "delta_colorfulness": 5.5, "psnr": 22.1,
              "num_images": 5000, "num_reference_images": 5000}
    assert markdown_table(result) == (
        "| protocol | FID | CF | CF ref | dCF | PSNR | images | reference images |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        "| ddcolor_val5k | 12.35 | 30.00 | 35.50 | 5.50 | 22.10 | 5000 | 5000 |")
    assert markdown_table({"psnr": 9.0, "num_images": 2, "protocol": None}) == (
        "| protocol | PSNR | images |\n|---|---:|---:|\n| custom | 9.00 | 2 |")


def test_identical_sets_give_an_infinite_psnr_and_say_so(tmp_path):
    for name in ("a", "b"):
        Image.fromarray(np.full((8, 8, 3), ord(name), np.uint8)).save(tmp_path / f"{name}.png")
    result = evaluate(FolderSet(str(tmp_path)), FolderSet(str(tmp_path)),
                      names=("colorfulness", "psnr"), report=lambda line: None)
    assert result["psnr"] == float("inf") and result["psnr_pairs"] == 2
    assert result["psnr_identical"] == 2 and result["pairing"] == "name"
    assert result["warnings"] == ["2 generated images equal their reference (infinite PSNR); "
                                  "the mean is over the others."]
    # No pair with both images readable: no PSNR to average (infinite), and said.
    (tmp_path / "g").mkdir()
    (tmp_path / "r").mkdir()
    (tmp_path / "g" / "b.png").write_bytes(b"broken")
    (tmp_path / "r" / "a.png").write_bytes(b"broken")
    shutil.copy(tmp_path / "a.png", tmp_path / "g" / "a.png")
    shutil.copy(tmp_path / "b.png", tmp_path / "r" / "b.png")
    result = evaluate(FolderSet(str(tmp_path / "g")), FolderSet(str(tmp_path / "r")),
                      names=("psnr",), report=lambda line: None)
    assert result["psnr"] == float("inf") and result["psnr_pairs"] == 0
    assert result["unreadable"] == {"generated": 1, "reference": 1}


def test_pairing_is_resolved_by_what_each_set_can_do():
    from types import SimpleNamespace

    from coltran_tf.evaluation.evaluate import resolve_pairing

    folder = SimpleNamespace(named=True, get=dict.get, description="folder F")
    tfds_set = SimpleNamespace(named=True, description="TFDS T")
    gen_dir = SimpleNamespace(named=False, description="gen dir G")
    assert resolve_pairing("auto", folder, tfds_set) == "name"
    assert resolve_pairing("auto", tfds_set, folder) == "name"
    assert resolve_pairing("auto", folder, gen_dir) == "index"
    assert resolve_pairing("auto", gen_dir, gen_dir) == "index"
    assert resolve_pairing("index", tfds_set, tfds_set) == "index"  # streamed side by side
    for pairing, generated, reference, message in (
            ("name", tfds_set, tfds_set,
             "Pairing by name needs one of the two sets to be a folder (its images are looked "
             "up by name); got TFDS T and TFDS T. Use --pair_by=index when both are in the "
             "same order, or write one set to a folder."),
            ("name", folder, gen_dir, "Pairing by name needs named images on both sides; "
             "gen dir G has positions only. Use --pair_by=index."),
            ("name", gen_dir, folder, "Pairing by name needs named images on both sides; "
             "gen dir G has positions only. Use --pair_by=index."),
            ("order", folder, folder, "--pair_by='order': choose one of ['auto', 'name', "
             "'index'].")):
        with pytest.raises(EvaluationError) as error:
            resolve_pairing(pairing, generated, reference)
        assert str(error.value) == message


def test_set_specs_that_cannot_be_read_are_named(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    from coltran_tf.evaluation.image_sets import open_set

    for spec, message in (
            ("", "An image set is empty: pass a folder, a gen dir or tfds:NAME."),
            ("tfds:", "'tfds:': a TFDS set is tfds:NAME[:SPLIT], e.g. "
                      "tfds:imagenet2012:validation[:5000]."),
            (str(tmp_path / "none"), f"{tmp_path / 'none'}: no such folder (or use "
                                     "tfds:NAME[:SPLIT]).")):
        with pytest.raises(EvaluationError) as error:
            open_set(spec)
        assert str(error.value) == message
    asked = []

    def builder(name, data_dir):
        asked.append((name, data_dir))
        raise FileNotFoundError("no such dataset\nmore lines")

    monkeypatch.setattr(tfds, "builder", builder)
    with pytest.raises(EvaluationError) as error:
        open_set("tfds:imagenet2012", tfds_data_dir=str(tmp_path))
    assert asked == [("imagenet2012", str(tmp_path))]
    assert str(error.value) == (
        "tfds:imagenet2012: TFDS cannot read it (no such dataset). Prepare the dataset first "
        "(ImageNet: the tars in <data_dir>/downloads/manual, then tfds build imagenet2012) "
        "and pass --tfds_data_dir.")
    with pytest.raises(EvaluationError):
        open_set("tfds:x:train", tfds_data_dir="")
    assert asked[-1] == ("x", None)  # no --tfds_data_dir: TFDS's default


def test_psnr_of_different_sizes_and_fid_without_features_are_refused(tmp_path):
    for folder, size in (("g", 8), ("r", 6)):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(tmp_path / folder / "a.png")
    with pytest.raises(EvaluationError) as error:
        evaluate(FolderSet(str(tmp_path / "g")), FolderSet(str(tmp_path / "r")),
                 names=("psnr",), report=lambda line: None)
    assert str(error.value) == (
        "Generated 'a' is (8, 8) but its reference 'a' is (6, 6); PSNR needs equal sizes "
        "(pass --preprocess=center_crop_256 or resize_256, or use a --protocol that sets "
        "one).")
    with pytest.raises(EvaluationError) as error:
        evaluate(FolderSet(str(tmp_path / "g")), FolderSet(str(tmp_path / "g")),
                 names=("fid",), report=lambda line: None)
    assert str(error.value) == "FID needs a feature extractor."
