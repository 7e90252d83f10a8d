"""sampling/pipeline.py: placing the stages, their resolutions, preparing
photos and chaining the stages, on tiny untrained models (fast)."""

import numpy as np
import pytest

from coltran_tf.data import keys
from coltran_tf.data.preprocess import resize_area
from coltran_tf.sampling.pipeline import Pipeline, PipelineError
from coltran_tf.sampling.staged import uncertainty_image
from conftest import STAGES, tiny_config


def _build(stage, low=16, high=64, seed=3):
    import keras

    from coltran_tf.models.builder import build_model

    keras.utils.set_random_seed(seed)
    return build_model(tiny_config(stage, spatial_resolution=high, low_resolution=low))


@pytest.fixture(scope="module")
def models():
    return {name: _build(name) for name in STAGES}


def _photos(count=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


def test_the_stages_are_placed_in_pipeline_order_whatever_the_arguments_order(models):
    colorizer, color, spatial = (models[name] for name in STAGES)
    pipeline = Pipeline(spatial, None, colorizer, color, sources={"colorizer": "here"})
    assert pipeline.names == tuple(STAGES)
    assert pipeline.stage("color_upsampler") is color
    assert pipeline.sources == {"colorizer": "here"}
    assert Pipeline(color, colorizer).names == ("colorizer", "color_upsampler")
    assert Pipeline(colorizer).sources == {}


def test_stages_that_do_not_fit_are_refused_by_name(models):
    colorizer = models["colorizer"]
    for args, message in (
            ((), "A pipeline needs at least one stage's model."),
            ((None,), "A pipeline needs at least one stage's model."),
            ((colorizer, colorizer), "Two colorizer models given."),
            ((colorizer, object()), "object is not a ColTran stage model.")):
        with pytest.raises(PipelineError) as error:
            Pipeline(*args)
        assert str(error.value) == message
    with pytest.raises(PipelineError) as error:
        Pipeline(colorizer, _build("color_upsampler", low=8, high=32))
    assert str(error.value) == (
        "The stages do not fit together (low resolutions: colorizer 16x16, color_upsampler "
        "8x8); use models trained with the same downsample_res.")
    with pytest.raises(PipelineError) as error:
        Pipeline(colorizer).stage("spatial_upsampler")
    assert str(error.value) == "This pipeline has no spatial_upsampler stage."
    with pytest.raises(PipelineError, match="no spatial_upsampler stage"):
        Pipeline(colorizer).sample_stage("spatial_upsampler", {})
    with pytest.raises(PipelineError, match="no color_upsampler stage"):
        Pipeline(colorizer).sample_stage_repeated("color_upsampler", {}, None, "argmax", 1, 0)


def test_low_and_high_resolutions(models):
    colorizer, color, spatial = (models[name] for name in STAGES)
    assert (colorizer.resolution, colorizer.source_resolution) == (16, 256)
    full = Pipeline(colorizer, color, spatial)
    assert (full.low, full.high) == (16, 64)
    # Without the spatial upsampler, the colorizer's source resolution.
    assert (Pipeline(colorizer, color).low, Pipeline(colorizer, color).high) == (16, 256)
    # The color upsampler alone knows only the low resolution.
    assert (Pipeline(color).low, Pipeline(color).high) == (16, 16)
    assert (Pipeline(spatial).low, Pipeline(spatial).high) == (16, 64)
    wide = _build("spatial_upsampler", low=16, high=32)
    assert Pipeline(colorizer, wide).high == 32  # the later stage's, not the colorizer's


def test_prepare_squeezes_photos_of_any_size(models):
    pipeline = Pipeline(*(models[name] for name in STAGES))
    photos = _photos()
    batch = pipeline.prepare(photos)
    assert sorted(batch) == sorted([keys.targets(), keys.targets(16)])
    np.testing.assert_array_equal(batch[keys.targets()], resize_area(photos, 64))
    np.testing.assert_array_equal(batch[keys.targets(16)],
                                  resize_area(resize_area(photos, 64), 16))
    # A list of photos of different sizes: each squeezed (not cropped) alone.
    odd = [np.repeat(photos[0], 2, axis=1), photos[1][:32]]
    listed = pipeline.prepare(odd)
    for b, photo in enumerate(odd):
        np.testing.assert_array_equal(listed[keys.targets()][b], resize_area(photo, 64))
    assert listed[keys.targets(16)].shape == (2, 16, 16, 3)


def test_sample_stage_is_the_stage_samplers_answer(models):
    pipeline = Pipeline(models["colorizer"], models["color_upsampler"])
    batch = pipeline.prepare(_photos())
    direct = pipeline.samplers["colorizer"].sample(batch, None, "sample", [5, 6])
    through = pipeline.sample_stage("colorizer", batch, None, "sample", [5, 6])
    np.testing.assert_array_equal(through["images"], direct["images"])
    # Its default mode is argmax.
    np.testing.assert_array_equal(
        pipeline.sample_stage("colorizer", batch, seeds=[5, 6])["images"],
        pipeline.samplers["colorizer"].sample(batch, None, "argmax", [5, 6])["images"])


def test_chain_feeds_each_stage_the_previous_ones_images(models):
    pipeline = Pipeline(*(models[name] for name in STAGES))
    batch = pipeline.prepare(_photos())
    by_hand, previous = [], None
    for name, mode, seed in zip(STAGES, ("sample", "argmax", "argmax"), ([1, 2], 3, 4)):
        by_hand.append(pipeline.sample_stage(name, batch, previous, mode, seed))
        previous = by_hand[-1]["images"]
    chained = pipeline.chain(batch, ("sample", "argmax", "argmax"), ([1, 2], 3, 4))
    assert len(chained) == 3
    for got, want in zip(chained, by_hand):
        np.testing.assert_array_equal(got["images"], want["images"])
    # Conditioned on ground truth instead, the color upsampler answers otherwise.
    alone = pipeline.sample_stage("color_upsampler", batch, None, "argmax", 3)
    assert not np.array_equal(alone["images"], chained[1]["images"])
    # One mode, or one seed, for every stage.
    same = pipeline.chain(batch, "argmax", 7)
    for got, name, previous in zip(same, STAGES, [None, same[0]["images"], same[1]["images"]]):
        np.testing.assert_array_equal(
            got["images"], pipeline.sample_stage(name, batch, previous, "argmax", 7)["images"])
    # A part of the chain, on given images.
    tail = pipeline.chain(batch, "argmax", 7, previous=same[0]["images"], start=1, stop=2)
    assert len(tail) == 1
    np.testing.assert_array_equal(tail[0]["images"], same[1]["images"])
    with pytest.raises(ValueError):  # a mode per stage, or one for all
        pipeline.chain(batch, ("argmax", "argmax"), 7)


def test_uncertainty_maps_become_grey_images():
    image = uncertainty_image(np.array([[0.0, 0.5, 1.0], [1.5, -0.2, 0.25]], np.float32))
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, [[0, 128, 255], [255, 0, 64]])
