"""iColoriT: the official model's numbers, colour space, hints, loss, schedule,
training, inference CLI, evaluation metrics."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from coltran_tf.icolorit import color, metrics
from coltran_tf.icolorit.convert import (
    WeightsError,
    load_icolorit,
    load_state_dict,
    model_from_state_dict,
)
from coltran_tf.icolorit.fixture_check import check_fixture
from coltran_tf.icolorit.head import pixel_shuffle
from coltran_tf.icolorit.hints import make_hint_files, random_hint_mask, read_hint_file
from coltran_tf.icolorit.inference import HintError, colorize, hint_channels
from coltran_tf.icolorit.model import build_icolorit
from coltran_tf.icolorit.patch_embedding import PatchEmbedding
from coltran_tf.icolorit.training import WarmupCosine, huber_loss
from conftest import REPO_ROOT as REPO
from conftest import require_shared, run_command

FIXTURE = os.path.join(os.path.dirname(REPO), "shared", "fixtures", "icolorit", "tiny")


@pytest.fixture
def official_fixture():
    """The official implementation's iColoriT fixture (../shared): skipped when
    absent, a failure under CI (conftest.missing)."""
    return require_shared("fixtures", "icolorit", "tiny")


needs_fixture = pytest.mark.usefixtures("official_fixture")


@needs_fixture
def test_official_fixture_matches_and_the_tool_exits_0():
    assert check_fixture(FIXTURE) < 1e-4
    result = run_command("verify_icolorit_fixture", FIXTURE)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max abs difference" in result.stdout


@needs_fixture
def test_a_state_dict_of_another_model_is_refused_with_its_keys(tmp_path):
    with np.load(os.path.join(FIXTURE, "state_dict.npz")) as data:
        state = {k: data[k] for k in data.files}
    with pytest.raises(WeightsError, match="missing"):
        load_state_dict(build_icolorit("micro"), state)
    del state["norm.bias"]
    with pytest.raises(WeightsError, match="norm.bias"):
        model_from_state_dict(state)


@pytest.mark.parametrize("preset, params", [("T", 6_444_740), ("S", 23_505_800),
                                            ("T-patch8", 5_716_004), ("T-patch32", 9_670_148)])
def test_parameter_counts_of_the_paper_models(preset, params):
    assert build_icolorit(preset).count_params() == params


@pytest.mark.parametrize("patch", [8, 16])
def test_patch_embedding_is_the_official_strided_convolution(patch):
    """Patchify + one matmul == Conv2D(kernel = stride = P) with the same HWIO kernel,
    row-major over the grid (float32 rounding apart: the sums run in another order)."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 4 * patch, 3 * patch, 4)).astype(np.float32)
    layer = PatchEmbedding(patch, 24, name="patch_embed")
    layer.build((None, 4 * patch, 3 * patch, 4))
    layer.kernel.assign(rng.normal(size=(patch, patch, 4, 24)) * 0.05)
    layer.bias.assign(rng.normal(size=24))
    conv = tf.nn.conv2d(images, layer.kernel, patch, "VALID") + layer.bias
    expected = tf.reshape(conv, (2, 12, 24)).numpy()
    np.testing.assert_allclose(np.asarray(layer(images)), expected, rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((None, 4 * patch, 3 * patch, 4)) == (None, 12, 24)


def test_patch_embedding_in_bfloat16_is_right_on_this_cpu():
    """The paper model's shape (224 px, P = 16, 4 -> 192 channels) in bfloat16: within
    bfloat16 rounding of float32 (inputs and kernel rounded to 8 significant bits,
    sums of 1,024 products: relative error ~1e-2 at most). oneDNN's AMX kernel for the
    strided convolution this replaces gave relative errors of 1.0-1.2 on AMX CPUs."""
    from coltran_tf.utils.precision import cpu_bfloat16_summary, policy_scope

    rng = np.random.default_rng(1)
    images = rng.normal(size=(2, 224, 224, 4)).astype(np.float32)
    layers = {}
    for name in ("float32", "bfloat16"):
        with policy_scope(name):
            layers[name] = PatchEmbedding(16, 192, name="patch_embed")
            layers[name].build((None, 224, 224, 4))
    layers["bfloat16"].set_weights(layers["float32"].get_weights())
    reference = np.asarray(layers["float32"](images))
    got = np.asarray(tf.cast(layers["bfloat16"](images), tf.float32))
    relative = np.abs(got - reference).max() / np.abs(reference).max()
    assert relative < 0.02, (relative, cpu_bfloat16_summary())


def test_pixel_shuffle_is_depth_to_space_order():
    tokens = np.random.default_rng(0).normal(size=(2, 3, 3, 16 * 16 * 2)).astype(np.float32)
    expected = tf.nn.depth_to_space(tokens, 16).numpy()
    np.testing.assert_array_equal(np.asarray(pixel_shuffle(tokens, 3, 16)), expected)


def test_lab_round_trip_and_reference_values():
    lab = np.asarray(color.rgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0],
                                                 [1.0, 0.0, 0.0]])))
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)  # sRGB red
    rgb = np.random.default_rng(1).uniform(size=(500, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(color.lab_to_rgb(color.rgb_to_lab(rgb))), rgb,
                               atol=2e-4)


def test_training_hints_are_distinct_cells_uniform_in_count():
    counts = []
    for i in range(40):
        mask = random_hint_mask(tf.constant([i, 7]), max_hints=128).numpy()
        assert set(np.unique(mask)) <= {0.0, 1.0} and mask.shape == (112 * 112,)
        counts.append(int((mask == 0).sum()))
    assert 0 <= min(counts) and max(counts) <= 128 and len(set(counts)) > 20


def test_hint_files_round_trip_and_follow_the_official_generator(tmp_path):
    written = make_hint_files(str(tmp_path), ["b", "a"], counts=(0, 3))
    assert written == 4
    lines = (tmp_path / "h2-n3" / "a.txt").read_text().split("\n")[:-1]
    import random
    rng = random.Random(1234)  # official: seed 1234, N outer, sorted stems inner
    assert lines[0] == f"{rng.randint(0, 111) * 2} {rng.randint(0, 111) * 2}"
    mask = read_hint_file(str(tmp_path / "h2-n3" / "a.txt")).reshape(112, 112)
    for line in lines:
        r, c = (int(v) for v in line.split())
        assert mask[r // 2, c // 2] == 0
    bad = tmp_path / "bad.txt"
    bad.write_text("3 x\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_hint_file(str(bad))


def test_user_hints_land_in_the_cell_of_their_pixel():
    channels = hint_channels([(50, 300, [255, 0, 0]), (0, 0, [20.0, -30.0])], 100, 400)
    cell = channels[112, 168]  # y 50/100*224 = 112, x 300/400*224 = 168
    assert cell[2] == 1 and cell[0] > 0.5  # red: large positive a
    np.testing.assert_allclose(channels[0, 0], [20 / 110, -30 / 110, 1.0], atol=1e-6)
    assert channels[..., 2].sum() == 8  # two 2x2 cells
    with pytest.raises(HintError, match="outside"):
        hint_channels([(100, 0, [0, 0, 0])], 100, 400)


def test_huber_loss_is_the_official_one():
    predicted = np.array([[[0.005, 0.3]], [[-0.02, 0.0]]], np.float32)
    target = np.zeros_like(predicted)
    per_element = lambda e: e * e / 0.02 if abs(e) < 0.01 else abs(e) - 0.005  # noqa: E731
    expected = np.mean([per_element(0.005) + per_element(0.3),
                        per_element(0.02) + per_element(0.0)])
    ours = float(huber_loss(predicted, target))
    assert ours == pytest.approx(expected, rel=1e-6)
    keras_value = float(keras.losses.Huber(delta=0.01)(target, predicted))
    assert keras_value == pytest.approx(0.005 * ours, rel=1e-5)  # spec §4


def test_warmup_then_cosine_schedule():
    schedule = WarmupCosine(5e-4, 1e-5, warmup_steps=10, total_steps=110)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(2.5e-4)
    assert float(schedule(10)) == pytest.approx(5e-4)
    assert float(schedule(60)) == pytest.approx(1e-5 + 0.5 * (5e-4 - 1e-5))
    assert float(schedule(110)) == pytest.approx(1e-5)


def test_metrics_follow_the_official_definitions():
    """iColoriT's metrics, the registry's under the official settings."""
    from coltran_tf.utils import metrics as registry

    assert registry.boundary_mask(224, metrics.PATCH).sum() == 10_972
    image = np.random.default_rng(0).uniform(size=(224, 224, 3))
    assert metrics.psnr(image, image) == pytest.approx(50.0)
    shifted = np.clip(image + 0.1, 0, 1)
    assert metrics.psnr(shifted, image) < 25
    assert metrics.value("PEV", image + 0.1, image) == pytest.approx(0.0, abs=1e-6)
    worse = image.copy()
    worse[:16, :16] += 0.5
    assert metrics.value("PEV", worse, image) > 10
    boundary = shifted.copy()
    boundary[15:17] = image[15:17]  # one border line right: B-PSNR rises, PSNR barely
    assert metrics.value("B-PSNR", boundary, image) > metrics.value("B-PSNR", shifted, image)
    assert metrics.value("CF", image, None) > 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A micro iColoriT trained briefly on data/ by the training command."""
    logdir = tmp_path_factory.mktemp("icolorit")
    result = run_command("coltran_tf.commands.icolorit_train", "--config=icolorit:tiny",
                         f"--logdir={logdir}", "--config.max_train_steps=40",
                         "--config.steps_per_log=5")
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir, result.stdout


def test_tiny_config_trains_with_decreasing_loss_and_resumes(trained):
    logdir, stdout = trained
    records = [json.loads(line) for line in open(logdir / "log.jsonl")]
    losses = [r["loss"] for r in records]
    assert [r["step"] for r in records] == list(range(5, 45, 5))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:2]), losses
    assert "images/s" in stdout and "ETA" in stdout
    model = load_icolorit(str(logdir / "model"))
    assert model.count_params() == build_icolorit("micro").count_params()
    more = run_command("coltran_tf.commands.icolorit_train", "--config=configs/icolorit.py:tiny",
                       f"--logdir={logdir}", "--config.max_train_steps=45",
                       "--config.steps_per_log=5")
    assert more.returncode == 0, more.stderr[-3000:]
    assert "step 45/45" in more.stdout and "step 5/" not in more.stdout


def test_cli_colorizes_a_bundled_image_from_a_hints_file(trained, tmp_path):
    logdir, _ = trained
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps([{"y": 100, "x": 120, "rgb": [200, 40, 40]},
                                 {"y": 300, "x": 400, "ab": [-20, 40]}]))
    out = tmp_path / "out.png"
    image = os.path.join(REPO, "data", "astronaut.png")
    result = run_command("coltran_tf.commands.icolorit_colorize", f"--image={image}",
                         f"--hints={hints}", f"--weights={logdir / 'model'}", f"--output={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    source = np.asarray(Image.open(os.path.join(REPO, "data/astronaut.png")).convert("RGB"))
    colored = np.asarray(Image.open(out))
    assert colored.shape == source.shape
    # The photo's own luminance is kept at full resolution.
    lightness = lambda rgb: np.asarray(color.rgb_to_lab(rgb / 255.0))[..., 0]  # noqa: E731
    assert np.abs(lightness(colored) - lightness(source)).mean() < 1.5
    hints.write_text("[{\"y\": 1}]")
    bad = run_command("coltran_tf.commands.icolorit_colorize", f"--image={image}",
                      f"--hints={hints}",
                      f"--weights={logdir / 'model'}", f"--output={out}")
    assert bad.returncode == 2 and "hint 0 needs y, x and rgb or ab" in bad.stderr


def test_hints_change_the_colours_where_they_are(trained):
    logdir, _ = trained
    model = load_icolorit(str(logdir / "model"))
    gray = np.repeat(np.asarray(Image.open(os.path.join(REPO, "data/camera.png"))
                                .convert("L"))[..., None], 3, -1)
    plain = colorize(model, gray).astype(np.float32)
    hinted = colorize(model, gray, [(y, x, [255, 0, 0]) for y in range(0, 512, 64)
                                    for x in range(0, 512, 64)]).astype(np.float32)
    assert np.abs(hinted - plain).mean() > 0.5


def test_evaluate_writes_a_results_table(trained, tmp_path):
    logdir, _ = trained
    data = tmp_path / "mini"
    (data / "imgs").mkdir(parents=True)
    for name in ("chelsea.png", "coffee.png"):
        Image.open(os.path.join(REPO, "data", name)).save(data / "imgs" / name)
    _random_lpips_weights(tmp_path / "lpips.npz")
    result = run_command(
        "coltran_tf.commands.icolorit_evaluate", f"--weights={logdir / 'model'}",
        f"--data_dirs={data}", f"--hint_root={tmp_path / 'hints'}", "--counts=0,1,10",
        "--make_hints", f"--store_dir={tmp_path / 'results'}",
        f"--lpips_weights={tmp_path / 'lpips.npz'}")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results" / "mini" / "results.json").read_text())
    assert set(results) == {"0", "1", "10"}
    assert all(r["images"] == 2 and 5 < r["PSNR"] <= 50 and r["LPIPS"] > 0
               for r in results.values())
    assert "| 10 |" in (tmp_path / "results" / "mini" / "results.md").read_text()


def test_benchmark_prints_latency_and_the_summary_line():
    result = run_command("benchmark_icolorit", "--presets=micro", "--repeats=2", "--nojit")
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("iColoriT ms per image") and "micro" in last


def _official_layout(model) -> dict:
    """The model's weights as the official state_dict lays them out (PyTorch's
    (out, in) dense and (out, in, h, w) convolution kernels)."""
    from coltran_tf.icolorit.convert import _targets

    state = {}
    for key, (variable, transform) in _targets(model).items():
        value = np.asarray(variable)
        if transform(value) is not value:  # the transposed kernels (a table stays as it is)
            value = value.T if value.ndim == 2 else np.transpose(value, (3, 2, 0, 1))
        state[key] = np.ascontiguousarray(value)
    return state


def test_pth_files_are_read_through_torch_load(tmp_path, monkeypatch):
    """The .pth path without PyTorch installed: torch.load stood in by a module
    that hands back what it would (tensors in a {"model": ...} checkpoint, or a
    bare state_dict); with PyTorch, the next test runs the real one."""
    import types

    from coltran_tf.icolorit.convert import read_state_dict

    model = build_icolorit("micro")
    state = _official_layout(model)

    class Tensor:
        def __init__(self, value):
            self.value = value

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.value

    saved, calls = {}, []

    def load(path, map_location, weights_only):
        calls.append((os.path.basename(path), map_location, weights_only))
        return saved[os.path.basename(path)]

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=load))
    tensors = {key: Tensor(value) for key, value in state.items()}
    for name, checkpoint in (("w.pth", {"model": tensors}), ("bare.pt", tensors)):
        saved[name] = checkpoint
        (tmp_path / name).write_bytes(b"stand-in")
        read = read_state_dict(str(tmp_path / name))
        assert sorted(read) == sorted(state)
        for key in state:
            np.testing.assert_array_equal(read[key], state[key])
    assert calls == [("w.pth", "cpu", False), ("bare.pt", "cpu", False)]
    loaded = load_icolorit(str(tmp_path / "w.pth"))
    inputs = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 224, 224, 4)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), atol=1e-5)
    # Without PyTorch: the fix is named.
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(WeightsError) as error:
        read_state_dict(str(tmp_path / "w.pth"))
    assert str(error.value).startswith(f"{tmp_path / 'w.pth'} is a PyTorch checkpoint and "
                                       "PyTorch is not installed. Install it (pip install torch)")


def test_released_pth_files_load_when_pytorch_is_installed(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional)")
    model = build_icolorit("micro")
    from coltran_tf.icolorit.convert import load_pth
    state = {key: torch.from_numpy(value) for key, value in _official_layout(model).items()}
    torch.save({"model": state}, tmp_path / "w.pth")
    loaded = load_icolorit(str(tmp_path / "w.pth"))
    inputs = np.zeros((1, 224, 224, 4), np.float32)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), np.asarray(model(inputs)), atol=1e-6)
    assert set(load_pth(str(tmp_path / "w.pth"))) == set(state)


def test_training_runs_under_mirrored_strategy(tmp_path):
    """Two CPU replicas (tf.distribute.MirroredStrategy), the global batch split."""
    result = subprocess.run(
        [sys.executable, "-m", "coltran_tf.commands.icolorit_train",
         "--config=configs/icolorit.py:tiny",
         f"--logdir={tmp_path}", "--accelerator_type=CPU", "--devices_per_worker=2",
         "--config.max_train_steps=4", "--config.steps_per_log=2", "--verbose"],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    # --verbose keeps absl's INFO lines, where tf.distribute names the strategy.
    assert "MirroredStrategy" in result.stderr and "step 4/4" in result.stdout
    assert (tmp_path / "model" / "model.weights.h5").exists()


def test_a_logdir_of_another_model_is_refused_clearly(trained):
    logdir, _ = trained
    result = run_command("coltran_tf.commands.icolorit_train", "--config=icolorit:tiny",
                         f"--logdir={logdir}", "--config.model.preset=T",
                         "--config.max_train_steps=50")
    assert result.returncode == 2
    assert "does not fit the configured model" in result.stderr and "--logdir" in result.stderr


def _random_lpips_weights(path):
    """An .npz in the layout of lpips.LPIPS(net='vgg').state_dict(), random values."""
    from coltran_tf.icolorit.lpips import CHANNELS, SLICES
    rng, weights, channels = np.random.default_rng(0), {}, 3
    for number, indices in enumerate(SLICES, 1):
        for i in indices:
            out = CHANNELS[number - 1]
            weights[f"net.slice{number}.{i}.weight"] = rng.normal(
                0, (2 / (9 * channels)) ** 0.5, (out, channels, 3, 3)).astype(np.float32)
            weights[f"net.slice{number}.{i}.bias"] = np.zeros(out, np.float32)
            channels = out
    for k, c in enumerate(CHANNELS):
        weights[f"lin{k}.model.1.weight"] = rng.uniform(0, 1, (1, c, 1, 1)).astype(np.float32)
    np.savez(path, **weights)


def test_lpips_from_user_weights(tmp_path):
    from coltran_tf.icolorit.lpips import LPIPS
    _random_lpips_weights(tmp_path / "lpips.npz")
    lpips = LPIPS.from_file(str(tmp_path / "lpips.npz"))
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=(2, 64, 64, 3)), rng.uniform(size=(2, 64, 64, 3))
    np.testing.assert_allclose(lpips.distance(a, a), 0.0, atol=1e-6)
    np.testing.assert_allclose(lpips.distance(a, b), lpips.distance(b, a), rtol=1e-5)
    near = lpips.distance(a, np.clip(a + 0.01, 0, 1))
    assert (near < lpips.distance(a, b)).all() and (near > 0).all()
    with pytest.raises(ValueError, match="lin0"):
        LPIPS({k: v for k, v in np.load(tmp_path / "lpips.npz").items() if k[:4] != "lin0"})


def test_initialisation_follows_the_global_seed():
    keras.utils.set_random_seed(3)
    first = np.asarray(build_icolorit("micro").blocks[0].attn.rpb_table)
    keras.utils.set_random_seed(3)
    again = np.asarray(build_icolorit("micro").blocks[0].attn.rpb_table)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first).max() <= 0.02  # truncated at one standard deviation


def test_compact_float16_weights_load_as_float32(tmp_path):
    from coltran_tf.icolorit.convert import save_compact

    model = build_icolorit("micro")
    save_compact(model, str(tmp_path / "compact"))
    assert sorted(os.listdir(tmp_path / "compact")) == ["config.json", "model.weights.npz"]
    loaded = load_icolorit(str(tmp_path / "compact"))
    for original, restored in zip(model.weights, loaded.weights):
        assert restored.dtype == "float32"
        np.testing.assert_allclose(restored, np.asarray(original, np.float16).astype(np.float32))
    inputs = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 224, 224, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded(inputs), model(inputs), atol=2e-2)
    with np.load(tmp_path / "compact" / "model.weights.npz") as arrays:
        partial = {k: arrays[k] for k in arrays.files[1:]}
    np.savez(tmp_path / "compact" / "model.weights.npz", **partial)
    with pytest.raises(WeightsError, match="does not fit"):
        load_icolorit(str(tmp_path / "compact"))
    # Saved again into the same directory; a config.json from before the precision
    # was recorded computes in float32.
    from coltran_tf.icolorit.convert import save

    save(model, str(tmp_path / "compact"))
    with open(tmp_path / "compact" / "config.json") as f:
        config = json.load(f)
    assert config.pop("precision") == "float32"
    with open(tmp_path / "compact" / "config.json", "w") as f:
        json.dump(config, f)
    assert load_icolorit(str(tmp_path / "compact")).compute_dtype == "float32"
    with pytest.raises(WeightsError) as error:
        load_icolorit(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path} holds no iColoriT model (expected config.json and model.weights.h5 or "
        ".npz, as written by training or icolorit.convert).")
