"""Models, the config-to-model seam, losses and our model format."""

import math

import keras
import numpy as np
import pytest

from coltran_tf.checkpoints.native import load_model_dir, save_model_dir
from coltran_tf.models import ColorUpsampler, ColTranCore, SpatialUpsampler, build_model
from coltran_tf.models.losses import bits_per_dim
from configs import color_upsampler, colorizer, spatial_upsampler


def _batch(resolution=64, low=64, seed=0):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 256, (2, resolution, resolution, 3)).astype(np.int32)
    low_res = targets[:, ::resolution // low, ::resolution // low]
    up_back = np.repeat(np.repeat(low_res, resolution // low, 1), resolution // low, 2)
    index = np.array([0, 2], np.int32)
    pick = lambda x: np.stack([x[i, ..., c:c + 1] for i, c in enumerate(index)])  # noqa: E731
    return {"targets": targets, f"targets_{low}": low_res, f"targets_{low}_up_back": up_back,
            "targets_slice": pick(targets), f"targets_slice_{low}": pick(low_res),
            f"targets_slice_{low}_up_back": pick(up_back), "channel_index": index}


def test_bits_per_dim_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 5, 3, 7)).astype(np.float32)
    labels = rng.integers(0, 7, (2, 4, 5, 3))
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nats = -np.take_along_axis(log_softmax, labels[..., None], -1)[..., 0]
    expected = nats.mean(0).sum() / math.log(2) / (4 * 5 * 3)
    np.testing.assert_allclose(float(bits_per_dim(labels, logits)), expected, rtol=1e-5)


@pytest.mark.parametrize("module", [colorizer, color_upsampler, spatial_upsampler])
def test_tiny_configs_build_and_give_finite_losses(module):
    config = module.get_config("tiny")
    config.resolution = [128, 128]  # keeps the spatial upsampler test small
    model = build_model(config)
    batch = _batch(128, 64)
    for training in (False, True):
        losses = model.batch_loss(batch, model.compute_outputs(batch, training), training)
        assert np.isfinite(float(losses["loss"]))
        # An untrained model is near uniform: about log2(K) bits per dimension.
        assert 6.0 < float(losses["loss_bits_per_dim"]) < 12.0


def test_colorizer_stage_decoder_has_no_parallel_head():
    config = colorizer.get_config("tiny")
    config.model.stage = "decoder"
    model = build_model(config)
    batch = _batch()
    outputs = model.compute_outputs(batch)
    assert set(outputs) == {"logits"}
    losses = model.batch_loss(batch, outputs)
    np.testing.assert_allclose(float(losses["loss"]), 0.99 * float(losses["loss_bits_per_dim"]))
    assert not any("parallel" in w.path for w in model.weights)


def test_colorizer_total_loss_weights_both_heads():
    config = colorizer.get_config("tiny")
    config.loss_factor, config.encoder_loss_factor = 0.7, 0.3
    model = build_model(config)
    batch = _batch()
    losses = model.batch_loss(batch, model.compute_outputs(batch))
    expected = 0.7 * losses["loss_bits_per_dim"] + 0.3 * losses["encoder_loss_bits_per_dim"]
    np.testing.assert_allclose(float(losses["loss"]), float(expected), rtol=1e-6)


def test_baseline_variant_has_no_conditional_layers():
    model = build_model(colorizer.get_config("tiny,baseline"))
    paths = [w.path for w in model.weights]
    assert not any("/cond" in p or "spatial_average" in p for p in paths)
    assert len(paths) < len(build_model(colorizer.get_config("tiny")).weights)


@pytest.mark.parametrize("resolution", [16, 48])
def test_spatial_upsampler_any_square_resolution(resolution):
    model = SpatialUpsampler(resolution=resolution, hidden_size=8, ff_size=8, num_heads=1,
                             num_encoder_layers=1, low_resolution=8)
    batch = _batch(resolution, 8)
    assert model.compute_outputs(batch)["logits"].shape == (2, resolution, resolution, 3, 256)
    assert model.compute_outputs(batch, training=True)["logits"].shape == (
        2, resolution, resolution, 1, 256)


def test_config_typos_are_errors():
    config = colorizer.get_config("tiny").to_dict()
    config["model"]["decoder"]["cond_lnn"] = True
    with pytest.raises(ValueError, match=r"cond_lnn.*model\.decoder"):
        build_model(config)
    config = colorizer.get_config("tiny").to_dict()
    config["model"]["encoder"]["hidden_size"] = 64
    with pytest.raises(ValueError, match="must agree"):
        build_model(config)
    config = color_upsampler.get_config("tiny").to_dict()
    config["model"]["name"] = "colour_upsampler"
    with pytest.raises(ValueError, match="colour_upsampler"):
        build_model(config)
    with pytest.raises(ValueError, match="Unknown config variant"):
        colorizer.get_config("tiyn")
    with pytest.raises(ValueError, match="Pick one of the 'tiny' and 'demo'"):
        color_upsampler.get_config("tiny,demo")


@pytest.mark.parametrize("cls,kwargs", [
    (ColTranCore, dict(resolution=8, hidden_size=8, encoder_ff_size=8, encoder_num_heads=1,
                       num_encoder_layers=1, decoder_ff_size=8, decoder_num_heads=1,
                       num_outer_layers=1, num_inner_layers=1,
                       conditioning={"cond_mlp": "shift"})),
    (ColorUpsampler, dict(resolution=8, hidden_size=8, ff_size=8, num_heads=1,
                          num_encoder_layers=1)),
])
def test_model_get_config_round_trips(cls, kwargs):
    model = cls(**kwargs)
    clone = cls.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_upsampler_sampling():
    model = build_model(color_upsampler.get_config("tiny"))
    rgb = _batch()["targets_64"]
    gray = keras.ops.convert_to_numpy(model.inputs_from_batch({"targets_64": rgb})[0])
    bits = rgb // 32
    logits = np.asarray(model.upsample_logits(gray, bits))
    argmax = np.asarray(model.sample_channels(gray, bits))
    assert argmax.dtype == np.uint8
    np.testing.assert_array_equal(argmax, logits.argmax(-1))
    first = np.asarray(model.sample_channels(gray, bits, mode="sample", seed=3))
    again = np.asarray(model.sample_channels(gray, bits, mode="sample", seed=3))
    np.testing.assert_array_equal(first, again)
    assert first.shape == (2, 64, 64, 3) and (first != argmax).any()
    with pytest.raises(ValueError, match="mode"):
        model.sample_channels(gray, bits, mode="greedy")


def test_native_format_round_trip(tmp_path):
    config = spatial_upsampler.get_config("tiny")
    config.resolution = [64, 64]
    model = build_model(config)
    batch = _batch(64, 64)
    save_model_dir(model, config, str(tmp_path / "m"), {"note": "test"})
    loaded, loaded_config = load_model_dir(str(tmp_path / "m"))
    assert loaded_config.to_dict() == config.to_dict()
    np.testing.assert_array_equal(model.compute_outputs(batch)["logits"],
                                  loaded.compute_outputs(batch)["logits"])
    with pytest.raises(FileExistsError):
        save_model_dir(model, config, str(tmp_path / "m"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging left over
    with pytest.raises(FileNotFoundError, match="coltran-convert"):
        load_model_dir(str(tmp_path))
