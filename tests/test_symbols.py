"""sampling/symbols.py on hand-made numbers: each symbol chosen, each bound of
the options, checked against values worked out by hand (fast, no model)."""

import numpy as np
import pytest
import tensorflow as tf

from coltran_tf.sampling import symbols


def _choose(probs, uniforms, mode="sample", logits=None, **controls):
    probs = tf.constant(probs, tf.float32)
    logits = tf.math.log(probs) if logits is None else tf.constant(logits, tf.float32)
    return symbols.choose(logits, probs, tf.constant(uniforms, tf.float32), mode,
                          **controls).numpy().tolist()


def test_a_sample_is_the_symbol_whose_cdf_interval_holds_the_uniform():
    # CDF 0.125, 0.375, 0.375, 1: symbol 0 holds [0, 0.125), 1 holds
    # [0.125, 0.375), 2 nothing, 3 holds [0.375, 1). Dyadic: exact in float32.
    probs = [0.125, 0.25, 0.0, 0.625]
    uniforms = [0.0, 0.124, 0.125, 0.374, 0.375, 0.999]
    assert _choose([probs] * 6, uniforms) == [0, 0, 1, 1, 3, 3]
    # Unnormalised probabilities: the uniform is scaled by their sum.
    assert _choose([[2 * p for p in probs]] * 6, uniforms) == [0, 0, 1, 1, 3, 3]
    # A symbol of zero probability first is never drawn, even by 0.
    assert _choose([[0.0, 0.5, 0.5]], [0.0]) == [1]


def test_a_draw_past_the_top_of_the_cdf_falls_back_to_the_most_likely_symbol():
    # u = 1 (rounding can get there) counts every CDF entry: the last symbol,
    # whose probability is 0 here, so the most likely one is taken instead.
    assert _choose([[0.25, 0.75, 0.0, 0.0]], [1.0]) == [1]
    assert _choose([[0.25, 0.25, 0.5]], [1.0]) == [2]  # allowed: kept


def test_argmax_takes_the_most_likely_symbol_of_the_logits():
    logits = [[0.0, 3.0, 1.0], [5.0, 0.0, 1.0]]
    # The probabilities given are ignored in argmax mode.
    assert _choose([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [0.5, 0.5], "argmax",
                   logits=logits) == [1, 0]


@pytest.mark.parametrize("controls", [{"temperature": 0.5}, {"top_k": 2}, {"top_p": 0.9}])
def test_any_control_off_its_default_samples_from_the_filtered_logits(controls):
    # The given probabilities say symbol 0; the logits say symbol 2 (almost
    # surely, whatever the control does to them).
    logits = [[0.0, 0.0, 40.0]]
    assert _choose([[1.0, 0.0, 0.0]], [0.5], logits=logits) == [0]
    assert _choose([[1.0, 0.0, 0.0]], [0.5], logits=logits, **controls) == [2]


def _filtered(probs, **controls):
    logits = tf.math.log(tf.constant([probs], tf.float32))
    return symbols.filtered_probabilities(logits, **controls).numpy()[0]


def test_filtering_by_temperature_top_k_and_top_p():
    probs = [0.5, 0.25, 0.125, 0.125]
    np.testing.assert_allclose(_filtered(probs), probs, rtol=1e-6)
    # Temperature 2: softmax(log p / 2) is proportional to sqrt(p).
    root = np.sqrt(probs)
    np.testing.assert_allclose(_filtered(probs, temperature=2.0), root / root.sum(), rtol=1e-6)
    np.testing.assert_allclose(_filtered(probs, top_k=2), [2 / 3, 1 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(_filtered(probs, top_k=1), [1, 0, 0, 0], rtol=1e-6)
    # k = 0 and k = N keep every symbol; symbols tied with the k-th stay.
    np.testing.assert_allclose(_filtered(probs, top_k=0), probs, rtol=1e-6)
    np.testing.assert_allclose(_filtered(probs, top_k=4), probs, rtol=1e-6)
    np.testing.assert_allclose(_filtered(probs, top_k=3), [0.5, 0.25, 0.125, 0.125],
                               rtol=1e-6)
    # top-p: the smallest set of most likely symbols whose mass reaches p.
    np.testing.assert_allclose(_filtered(probs, top_p=0.5), [1, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(_filtered(probs, top_p=0.6), [2 / 3, 1 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(_filtered(probs, top_p=0.75), [2 / 3, 1 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(_filtered(probs, top_p=0.8), probs, rtol=1e-6)
    np.testing.assert_allclose(_filtered(probs, top_k=3, top_p=0.6), [2 / 3, 1 / 3, 0, 0],
                               rtol=1e-6)


@pytest.mark.parametrize("n, block", [(512, 16), (48, 4), (100, 16), (7, 16)])
def test_the_blocked_cumulative_sum_is_the_running_sum(n, block):
    probs = np.random.default_rng(n).uniform(size=(3, n)).astype(np.float32)
    np.testing.assert_allclose(symbols.blocked_cumsum(tf.constant(probs), block).numpy(),
                               np.cumsum(probs, -1), rtol=1e-5)


def test_options_out_of_range_are_refused_by_name():
    ok = {"mode": "sample", "temperature": 1.0, "top_k": 0, "top_p": 1.0, "num_symbols": 512}
    for bounds in ({"temperature": 1e-3}, {"top_k": 512}, {"top_k": 0}, {"top_p": 1.0},
                   {"top_p": 1e-3}, {"mode": "argmax"}):
        symbols.check_options(**{**ok, **bounds})  # accepted
    for bad, message in (
            ({"mode": "greedy"}, "mode='greedy' is not supported; choose one of "
                                 "('argmax', 'sample')."),
            ({"temperature": 0.0}, "temperature=0.0 must be > 0."),
            ({"temperature": -1.0}, "temperature=-1.0 must be > 0."),
            ({"top_k": 513}, "top_k=513 must be in [0, 512] (0: off)."),
            ({"top_k": -1}, "top_k=-1 must be in [0, 512] (0: off)."),
            ({"top_p": 0.0}, "top_p=0.0 must be in (0, 1] (1: off)."),
            ({"top_p": 1.5}, "top_p=1.5 must be in (0, 1] (1: off).")):
        with pytest.raises(ValueError) as error:
            symbols.check_options(**{**ok, **bad})
        assert str(error.value) == message
    # The bound on k is the model's number of symbols (512 by default).
    symbols.check_options("sample", 1.0, 512, 1.0)
    with pytest.raises(ValueError, match=r"top_k=9 must be in \[0, 8\]"):
        symbols.check_options("sample", 1.0, 9, 1.0, num_symbols=8)
