"""The cached colorizer sampler: exactness, reference compatibility, controls."""

import numpy as np
import pytest
from test_colorizer_sampler import VARIANTS, _gray, _model, _teacher_forced_proba

from coltran_tf.sampling.cached_sampler import sample_colorizer_cached
from coltran_tf.sampling.colorizer_sampler import sample_colorizer_loop
from conftest import fresh_command_module


@pytest.mark.parametrize("stage", ["encoder_decoder", "decoder"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_exact_mode_probabilities_equal_teacher_forcing(variant, stage):
    """The paper conditioning through the default XLA loop, the other variants
    through the plain graph (the same ops; test_graph_and_xla_samplers_agree and
    the reference-mode tests run XLA on them), which compiles 3x faster."""
    model, gray = _model(VARIANTS[variant], stage), _gray()
    jit = variant == "paper"
    for mode in ("argmax", "sample"):
        out = sample_colorizer_cached(model, gray, mode=mode, seeds=5, jit_compile=jit)
        expected = _teacher_forced_proba(model, gray, out["symbols"])
        assert np.abs(out["proba"] - expected).max() < 1e-5, mode
        np.testing.assert_array_equal(out["uncertainty"], out["proba"].max(-1))
        if mode == "argmax":
            np.testing.assert_array_equal(out["symbols"], expected.argmax(-1))
    assert out["auto_sample"].shape == (2, 6, 6, 3)
    assert ("parallel" in out) == (stage == "encoder_decoder")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_reference_mode_equals_the_original_algorithm(variant):
    """XLA for the paper conditioning, the plain graph for the others (see above)."""
    model, gray = _model(VARIANTS[variant]), _gray()
    cached = sample_colorizer_cached(model, gray, mode="argmax", norm_context="reference",
                                     jit_compile=variant == "paper")
    loop = sample_colorizer_loop(model, gray, mode="argmax", norm_context="reference")
    np.testing.assert_array_equal(cached["symbols"], loop["symbols"])
    assert np.abs(cached["proba"] - loop["proba"]).max() < 1e-5


def test_graph_and_xla_samplers_agree():
    """jit_compile=False (a TensorFlow graph, select cache writes) samples what the
    default XLA loop (in-place dynamic-update-slice writes) does, for a
    scale-and-shift and an additive conditioning (the exact-mode tests run the
    paper conditioning through XLA and every other through the graph)."""
    for variant in ("paper", "additive_tanh"):
        model, gray = _model(VARIANTS[variant]), _gray()
        xla = sample_colorizer_cached(model, gray, seeds=[3, 4])
        graph = sample_colorizer_cached(model, gray, seeds=[3, 4], jit_compile=False)
        np.testing.assert_array_equal(xla["symbols"], graph["symbols"], err_msg=variant)
        assert np.abs(xla["proba"] - graph["proba"]).max() < 1e-5, variant


def test_seeds_are_per_image_and_samples_batch_together():
    """As a plain graph: XLA would compile once per batch size (3, 1, 4); seeds
    become uniforms before the loop, the same for both."""
    model, gray = _model({}), _gray(batch=3)

    def sample(images, seeds):
        return sample_colorizer_cached(model, images, seeds=seeds, jit_compile=False)

    one = sample(gray, [4, 5, 6])
    again = sample(gray, [4, 5, 6])
    np.testing.assert_array_equal(one["symbols"], again["symbols"])
    alone = sample(gray[1:2], [5])
    np.testing.assert_array_equal(one["symbols"][1], alone["symbols"][0])
    # num_samples of one image: the image repeated, one seed per sample.
    samples = sample(np.repeat(gray[:1], 4, 0), [1, 2, 3, 4])
    assert len({samples["symbols"][k].tobytes() for k in range(4)}) == 4
    assert sample(gray, 7)["symbols"].shape == (3, 6, 6)


def test_pipeline_draws_all_samples_in_one_call_like_one_by_one():
    """`sample` batches num_samples together; the result equals drawing each
    sample alone with its own seeds (image i, sample k: seed + i * n + k)."""
    from coltran_tf.sampling.cached_sampler import sample_colorizer
    from coltran_tf.sampling.pipeline import Pipeline
    from coltran_tf.utils import image_ops

    model = _model({})
    rgb = np.random.default_rng(2).integers(0, 256, (2, 6, 6, 3)).astype(np.int32)
    batch = {"targets": rgb, model.input_key: rgb}
    together = Pipeline(model).sample_stage_repeated("colorizer", batch, None, "sample", 3,
                                                     seed=10)
    gray = np.asarray(image_ops.rgb_to_grayscale(rgb))
    alone = [sample_colorizer(model, gray, "sample", 10 + np.arange(2) * 3 + k)
             for k in range(3)]
    np.testing.assert_array_equal(together["images"],
                                  np.concatenate([a["auto_sample"] for a in alone], 2))
    np.testing.assert_array_equal(together["uncertainty"],
                                  np.concatenate([a["uncertainty"] for a in alone], 2))


def test_temperature_top_k_and_top_p_reshape_the_distribution():
    """Through the sampler end to end, as a plain graph (the controls are tensor
    arguments: one traced loop per mode serves every setting, checked below;
    symbols.py's choice has its own test on hand-made logits)."""
    from coltran_tf.sampling.cached_sampler import _COMPILED

    model, gray = _model({}), _gray()

    def sample(**kwargs):
        return sample_colorizer_cached(model, gray, jit_compile=False, **kwargs)

    argmax = sample(mode="argmax")["symbols"]
    for controls in ({"temperature": 1e-4}, {"top_k": 1}, {"top_p": 1e-6}):
        out = sample(seeds=3, **controls)
        np.testing.assert_array_equal(out["symbols"], argmax, err_msg=str(controls))
    out = sample(seeds=3, top_k=3)
    ranks = (out["proba"] > np.take_along_axis(out["proba"], out["symbols"][..., None],
                                               -1)).sum(-1)
    assert ranks.max() < 3 and (out["symbols"] != argmax).any()
    out = sample(seeds=3, top_p=0.5)
    mass_above = np.where(out["proba"] > np.take_along_axis(
        out["proba"], out["symbols"][..., None], -1), out["proba"], 0).sum(-1)
    assert mass_above.max() < 0.5  # every pick lies inside the 0.5 nucleus
    loops = [function for key, function in _COMPILED[model].items() if key != "encode"]
    assert len(loops) == 2  # argmax and sample, whatever the controls
    assert all(len(f._list_all_concrete_functions()) == 1 for f in loops)
    for bad in ({"temperature": 0}, {"top_k": 513}, {"top_p": 0.0}, {"mode": "greedy"}):
        with pytest.raises(ValueError):
            sample_colorizer_cached(model, gray, **bad)


def test_the_choice_takes_its_controls_as_numbers_or_tensors():
    """symbols.choose / filtered_probabilities on hand-made logits: Python
    numbers and tensors (as a traced graph gets them) give the same
    distribution; top-k keeps k symbols, top-p the smallest nucleus; with the
    default controls the given probabilities are sampled from as they are."""
    import tensorflow as tf

    from coltran_tf.sampling import symbols

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(0, 3, (4, 512)), tf.float32)
    uniforms = tf.constant(rng.uniform(size=4), tf.float32)
    spec = [tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.float32)]
    filtered = tf.function(symbols.filtered_probabilities, input_signature=[
        tf.TensorSpec([None, 512], tf.float32), *spec])
    chosen = tf.function(lambda t, k, p: symbols.choose(
        logits, tf.nn.softmax(logits), uniforms, "sample", t, k, p), input_signature=spec)
    for t, k, p in ((1.0, 0, 1.0), (0.7, 0, 1.0), (1.0, 5, 1.0), (1.0, 0, 0.8),
                    (0.5, 10, 0.9)):
        numbers = symbols.filtered_probabilities(logits, t, k, p).numpy()
        tensors = filtered(logits, t, k, p).numpy()
        np.testing.assert_array_equal(numbers, tensors)
        np.testing.assert_allclose(numbers.sum(-1), 1.0, rtol=1e-5)
        kept = numbers > 0
        if k:
            assert (kept.sum(-1) <= k).all()
        if p < 1.0:
            unfiltered = symbols.filtered_probabilities(logits, t, k).numpy()
            ordered = np.sort(unfiltered, -1)[:, ::-1]
            size = kept.sum(-1)
            assert all(ordered[b, :size[b]].sum() >= p - 1e-6 and
                       ordered[b, :size[b] - 1].sum() < p for b in range(4))
        picked = chosen(t, k, p).numpy()
        assert (np.take_along_axis(numbers, picked[:, None], -1) > 0).all()
        np.testing.assert_array_equal(picked, symbols.choose(
            logits, tf.nn.softmax(logits), uniforms, "sample", t, k, p).numpy())
    # Defaults: the given probabilities, not the logits' softmax, are drawn from.
    one_hot = tf.one_hot([7, 8, 9, 10], 512)
    np.testing.assert_array_equal(symbols.choose(logits, one_hot, uniforms, "sample"),
                                  [7, 8, 9, 10])


def test_pixel_uniforms_are_per_seed_for_any_batch():
    import tensorflow as tf

    from coltran_tf.sampling import symbols

    unknown_batch = tf.function(lambda s: symbols.pixel_uniforms(s, 3, 5),
                                input_signature=[tf.TensorSpec([None], tf.int32)])
    together = unknown_batch(tf.constant([11, 12, 13])).numpy()
    for b, seed in enumerate((11, 12, 13)):
        np.testing.assert_array_equal(together[b], tf.random.stateless_uniform(
            [3, 5], seed=[seed, symbols.SEED_SALT]).numpy())


@pytest.mark.slow  # compares two timings (the eager and the compiled original algorithm)
def test_benchmark_sampler_prints_the_samplers_and_their_ratios():
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT

    result = subprocess.run(
        [sys.executable, "tools/benchmark_sampler.py", "--variants=tiny", "--batch_sizes=2",
         "--upsampler_batch=0"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "first 1 row(s) timed, scaled to 64 rows" in lines[0]
    row = next(line for line in lines if line.startswith("tiny"))
    _, batch, eager, loop, cached, per_sec, batch_s, vs_eager, vs_loop, peak = row.split()
    assert int(batch) == 2 and float(loop) > 0 and float(cached) > 0 and float(peak) > 0
    assert abs(float(vs_loop[:-1]) - float(loop) / float(cached)) < 0.05 * float(vs_loop[:-1])
    assert abs(float(vs_eager[:-1]) - float(eager) / float(cached)) < 0.05 * float(vs_eager[:-1])
    # Run op by op from Python, the original algorithm is slower than compiled.
    assert float(eager) > float(loop)


def test_sample_and_colorize_use_the_cached_sampler_by_default():
    from absl import flags as absl_flags

    from coltran_tf.configs.sampler import SamplerOptions

    # A command run before in this process (run_command) may hold flags of the
    # same names: define colorize's afresh.
    fresh_command_module("coltran_tf.commands.colorize")
    from configs import colorizer

    for variant in (None, "tiny"):
        options = SamplerOptions.from_mapping(colorizer.get_config(variant).sample)
        assert options == SamplerOptions()
    assert SamplerOptions.from_mapping({}).sampler == "cached"  # an original config
    defaults = {name: absl_flags.FLAGS[name].default for name in ("sampler", "norm_context")}
    assert defaults == {"sampler": "cached", "norm_context": "exact"}
