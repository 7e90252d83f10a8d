"""bfloat16 mixed precision: every command takes it, what must stay float32 does,
and the choice survives saving, loading and export."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from coltran_tf.checkpoints import loading
from coltran_tf.checkpoints.native import load_model_dir
from coltran_tf.models.builder import build_model
from coltran_tf.sampling.cached_sampler import sample_colorizer_cached
from coltran_tf.sampling.colorizer_sampler import sample_colorizer_loop
from coltran_tf.train import evaluator, trainer
from coltran_tf.train import state as state_lib
from coltran_tf.utils import precision
from conftest import REPO_ROOT, run_command, tiny_config, write_tiny_models

SIZES = dict(low_resolution=16, spatial_resolution=64)


def _bf16(stage, **overrides):
    config = tiny_config(stage, **SIZES)
    config.precision = "bfloat16"
    for key, value in overrides.items():
        config[key] = value
    return config


def test_precision_choices_and_auto():
    assert precision.resolve("float32") == "float32"
    assert precision.resolve("bfloat16") == "bfloat16"
    assert precision.resolve("auto") in precision.PRECISIONS
    os.environ["COLTRAN_TF_PRECISION"] = "float32"
    try:
        assert precision.resolve("auto") == "float32"
    finally:
        del os.environ["COLTRAN_TF_PRECISION"]
    with pytest.raises(ValueError, match="choose one of"):
        precision.resolve("float16")


def test_trains_evaluates_and_exports_in_bfloat16(tmp_path):
    """Variables, optimizer slots, EMA and losses in float32; compute in bfloat16;
    the exported model directory loads in bfloat16. (The color upsampler, the
    cheapest stage: all three train through the same trainer and build through
    the same builder; test_samplers_run_in_bfloat16... runs the colorizer's
    forward pass and both samplers.)"""
    config = _bf16("color_upsampler", max_train_steps=2)
    summary = trainer.train(config, str(tmp_path), steps_per_summaries=2,
                            report=lambda line: None)
    losses = [value for _, entry in summary["history"] for value in entry.values()]
    assert losses and np.isfinite(losses).all()
    train_state = state_lib.build_train_state(config)
    assert train_state.model.compute_dtype == "bfloat16"
    assert {v.dtype for v in train_state.model.weights} == {"float32"}
    assert {str(v.dtype.name) for v in train_state.ema.shadows} == {"float32"}
    assert {v.dtype for v in train_state.optimizer.variables[1:]} == {"float32"}
    exported, exported_config = load_model_dir(summary["export_dir"])
    assert exported.compute_dtype == "bfloat16" and exported_config.precision == "bfloat16"
    # A command's precision wins over the saved one, both ways.
    model, config_used, _ = loading.load_model(summary["export_dir"], precision="float32")
    assert model.compute_dtype == "float32" and config_used.precision == "float32"
    config.eval_num_examples, config.eval_batch_size = 2, 2
    (result,) = evaluator.evaluate(config, str(tmp_path / "eval"), "test",
                                   checkpoint=str(tmp_path), report=lambda line: None)
    assert np.isfinite(result["loss_bits_per_dim"]) and 0 < result["loss_bits_per_dim"] < 10


def test_samplers_run_in_bfloat16_and_draw_from_float32_probabilities():
    model = build_model(_bf16("colorizer", downsample_res=8))
    outer_cache = model.outer_decoder.empty_caches(1)
    inner_cache = model.inner_decoder.empty_caches(1)
    cached = [t for c in outer_cache + inner_cache for t in c]
    assert cached and {t.dtype.name for t in cached} == {"bfloat16"}
    gray = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1))
    for out in (sample_colorizer_cached(model, gray, seeds=1, jit_compile=False),
                sample_colorizer_loop(model, gray, mode="sample", seed=1)):
        assert out["proba"].dtype == np.float32
        np.testing.assert_allclose(out["proba"].sum(-1), 1.0, atol=1e-4)
        assert out["symbols"].min() >= 0 and out["symbols"].max() < 512
    # Argmax in bfloat16 picks what float32 picks nearly everywhere (same weights).
    reference = build_model(tiny_config("colorizer", low_resolution=8))
    reference.set_weights(model.get_weights())
    rgb = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3))
    logits = {m.compute_dtype: np.asarray(m.compute_outputs({m.input_key: rgb})["logits"])
              for m in (model, reference)}
    assert logits["bfloat16"].dtype == np.float32
    agree = (logits["bfloat16"].argmax(-1) == logits["float32"].argmax(-1)).mean()
    assert agree > 0.9, agree
    for stage in ("color_upsampler", "spatial_upsampler"):
        upsampler = build_model(_bf16(stage))
        side, rng = upsampler.resolution, np.random.default_rng(2)
        out = upsampler.sample_channels(rng.integers(0, 256, (1, side, side, 1)),
                                        rng.integers(0, 8, (1, side, side, 3)))
        assert out.shape == (1, side, side, 3)


def test_colorize_command_takes_the_precision(tmp_path):
    models = write_tiny_models(tmp_path / "models", low_resolution=8, spatial_resolution=32)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(os.path.join(REPO_ROOT, "data", "camera.png"), photos)
    result = run_command("coltran_tf.commands.colorize", f"--img_dir={photos}",
                         f"--store_dir={tmp_path / 'out'}", f"--checkpoints={models}",
                         "--precision=bfloat16", "--mode=argmax", "--sheet_rows=0")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "out" / "report.json") as f:
        assert json.load(f)["colorized"] == ["camera.png"]
    # Used, not only accepted: the run file records what the loaded stages compute in
    # (read from the models themselves, colorize_folder._precision).
    with open(tmp_path / "out" / "run.json") as f:
        assert json.load(f)["precision"] == "bfloat16"
    final = np.asarray(Image.open(tmp_path / "out" / "final" / "camera.png"))
    assert final.shape == (32, 32, 3) and final.std() > 0
    bad = run_command("coltran_tf.commands.colorize", "--img_dir=data",
                      f"--store_dir={tmp_path / 'x'}",
                      "--precision=half")
    assert bad.returncode == 2 and "precision" in bad.stderr


def test_icolorit_trains_in_bfloat16_and_the_precision_survives_save_and_load(tmp_path):
    from coltran_tf.configs import get_preset
    from coltran_tf.icolorit import convert
    from coltran_tf.icolorit.training import train

    config = get_preset("icolorit", "tiny")
    config.precision, config.max_train_steps, config.steps_per_log = "bfloat16", 2, 1
    losses = train(config, str(tmp_path))
    assert sorted(losses) == [1, 2] and np.isfinite(list(losses.values())).all()
    model = convert.load_saved(str(tmp_path / "model"))
    with open(tmp_path / "model" / "config.json") as f:
        assert json.load(f)["precision"] == "bfloat16"
    side = model.image_size
    x = np.random.default_rng(0).normal(size=(1, side, side, 4)).astype(np.float32)
    out = model(x)
    assert model.compute_dtype == "bfloat16" and out.dtype.name == "float32"
    assert {v.dtype for v in model.weights} == {"float32"}
    reference = convert.load_saved(str(tmp_path / "model"), "float32")
    assert reference.compute_dtype == "float32"
    expected = np.asarray(reference(x))
    difference, scale = np.abs(expected - np.asarray(out)), np.abs(expected).max()
    # Relative to the output's range: bfloat16 rounds each value by at most 2^-9,
    # which over the tiny model's few layers stays near 1% of the range (measured
    # 0.2% mean, 1.4% max, on an AMX CPU); a wrong kernel moves the whole range.
    assert 0 < difference.max() <= 0.05 * scale, (difference.max(), scale)
    assert difference.mean() <= 0.01 * scale, (difference.mean(), scale)


def test_profile_ops_counts_self_time_by_op_kind():
    """tools/profile_ops.py: nested events count once (their own time), wrappers
    and the Python thread not at all, numbered XLA thunks by kind."""
    import profile_ops
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    names = ["ExecutorState::Process", "enc/q/MatMul:_MklMatMul", "enc/q/Cast:Cast",
             "loop_add_fusion.12", "<lambda>"]
    for key, name in enumerate(names, 1):
        plane.event_metadata[key].name = name
    ms = 10**9  # picoseconds
    executor = plane.lines.add(name="tf_Compute/1")
    for key, start, duration in ((1, 0, 100), (2, 10, 50), (3, 20, 10), (4, 70, 20)):
        executor.events.add(metadata_id=key, offset_ps=start * ms, duration_ps=duration * ms)
    xla = plane.lines.add(name="tf_numa_-1")
    xla.events.add(metadata_id=4, offset_ps=0, duration_ps=5 * ms)
    plane.lines.add(name="python").events.add(metadata_id=5, offset_ps=0, duration_ps=500 * ms)
    totals = profile_ops.self_times(space)
    assert dict(totals) == {"_MklMatMul": 40.0, "Cast": 10.0, "loop_add_fusion": 25.0}


# bfloat16 against float32 with the bundled demo weights on a real photo, through the
# plain (not XLA-compiled) forward pass and with TensorFlow's default settings (oneDNN
# on): the path that training, evaluation and the exports take. bfloat16 keeps 8
# significant bits, so each value is rounded by at most 2^-9 (0.2%) relative; over a
# few residual blocks that grows to a few tenths of a percent of the output's range.
# - iColoriT's ab (range +-110): mean |difference| <= 1 ab unit (about a just
#   noticeable colour difference), max <= 6. Measured 0.13 / 0.69 on CPUs with and
#   without AMX; the strided bfloat16 convolution the patch embedding used to run gave
#   a mean of 30 on AMX CPUs.
# - ColTran's stages: the total variation between the per-pixel distributions (half
#   the L1 distance, 0..1) averages <= 0.03 and is <= 0.25 everywhere. Measured
#   0.005-0.011 mean, <= 0.053 max; a wrong kernel moves whole distributions (~1).
PHOTO = "chelsea.png"


def _photo() -> np.ndarray:
    return np.asarray(Image.open(os.path.join(REPO_ROOT, "data", PHOTO)).convert("RGB"))


def test_demo_icolorit_in_bfloat16_agrees_with_float32_on_a_real_photo():
    from coltran_tf import demo
    from coltran_tf.icolorit import convert
    from coltran_tf.icolorit.inference import Prepared

    rgb = _photo()
    rng = np.random.default_rng(0)
    points = zip(rng.integers(0, rgb.shape[0], 25), rng.integers(0, rgb.shape[1], 25))
    hints = [(int(y), int(x), rgb[y, x].tolist()) for y, x in points]
    x = Prepared(rgb).model_input(hints)[None]
    ab = {p: 110.0 * np.asarray(convert.load_saved(demo.icolorit_dir(), p)(x))
          for p in ("float32", "bfloat16")}
    difference = np.abs(ab["float32"] - ab["bfloat16"])
    where = f"CPU: {precision.cpu_bfloat16_summary()}"
    assert difference.mean() <= 1.0, (difference.mean(), where)
    assert difference.max() <= 6.0, (difference.max(), where)


@pytest.mark.parametrize("stage", ["colorizer", "color_upsampler", "spatial_upsampler"])
def test_demo_coltran_stage_in_bfloat16_agrees_with_float32_on_a_real_photo(stage):
    import tensorflow as tf

    from coltran_tf import demo
    from coltran_tf.data.preprocess import make_example

    probabilities = {}
    for name in ("float32", "bfloat16"):
        model, config, _ = loading.load_model(os.path.join(demo.coltran_dir(), stage),
                                              precision=name, report=lambda line: None)
        assert model.compute_dtype == name
        example = make_example(tf.constant(_photo()), 0, tf.constant([0, 0]),
                               resolution=config.resolution[0], downsample=config.downsample,
                               downsample_res=config.downsample_res, random_channel=False,
                               training=False)
        logits = model.compute_outputs({k: v[None] for k, v in example.items()})["logits"]
        probabilities[name] = tf.nn.softmax(tf.cast(logits, tf.float32), -1).numpy()
    total_variation = 0.5 * np.abs(probabilities["float32"]
                                   - probabilities["bfloat16"]).sum(-1)
    where = f"CPU: {precision.cpu_bfloat16_summary()}"
    assert total_variation.mean() <= 0.03, (total_variation.mean(), where)
    assert total_variation.max() <= 0.25, (total_variation.max(), where)
