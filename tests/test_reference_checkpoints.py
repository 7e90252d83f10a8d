"""The converter against the original's checkpoints, layouts and outputs."""

import json
import os

import numpy as np
import pytest
from reference_style import write_reference_style_checkpoint

from coltran_tf.checkpoints.convert import convert_reference_checkpoint
from coltran_tf.checkpoints.native import load_model_dir
from coltran_tf.checkpoints.reference import (
    ReferenceCheckpointMismatch,
    load_reference_checkpoint,
    parse_checkpoint_keys,
    plan_mapping,
    unescape_key,
)
from coltran_tf.configs.stages import MODEL_NAMES
from coltran_tf.models import ColTranCore, build_model
from coltran_tf.sampling.fixture_check import verify_fixture_dir
from conftest import require_fixtures, run_command


def _layout(variant, name):
    with open(require_fixtures(variant, name, "layout.json")) as f:
        return json.load(f)


def test_unescape_key():
    assert unescape_key("a.Sb..c.Sd:0") == "a/b.c/d:0"


@pytest.mark.parametrize("sampler", [pytest.param("loop", marks=pytest.mark.slow), "cached"])
def test_tiny_fixture_matches_the_original(sampler):
    """Every array of every expected.npz: logits, losses, parallel head, samplers
    (the colorizer's original algorithm and the cached one, reference mode).

    The loop sampler's run is slow (-m slow): the default suite checks the cached
    sampler here and that both samplers agree in reference mode
    (test_cached_sampler.py)."""
    results = verify_fixture_dir(require_fixtures("tiny"), report=lambda line: None,
                                 sampler=sampler)
    assert len(results) >= 37
    failed = [r.line() for r in results if not r.ok]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_full_layouts_map_one_to_one(name):
    """The released models' keys: every model and EMA key maps to one variable."""
    layout = _layout("full", name)
    model = build_model(layout["config"])
    entries = parse_checkpoint_keys(layout["checkpoint_keys"])
    plan = plan_mapping(model, entries, use_ema=True)  # raises on any mismatch
    assert len(plan.pairs) == len(model.weights) == len(entries.raw)
    assert len({id(v) for v, _, _ in plan.pairs}) == len(model.weights)
    assert {n for _, n, _ in plan.pairs} == set(entries.raw)
    assert {n for _, n, ema in plan.pairs if ema} == set(entries.ema)
    layout_shapes = {k[:-2]: tuple(s) for k, s in layout["model_variables"]}
    for variable, original, _ in plan.pairs:
        assert tuple(variable.shape) == layout_shapes[original]


def test_paper_colorizer_parameter_count():
    from configs import colorizer

    model = build_model(colorizer.get_config())
    count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert count == 46_310_400


def test_raw_weights_equal_the_originals():
    path = require_fixtures("tiny", "coltran_core")
    model = build_model(_layout("tiny", "coltran_core")["config"])
    load_reference_checkpoint(model, os.path.join(path, "ckpt"), use_ema=False)
    raw = np.load(os.path.join(path, "raw_weights.npz"))
    plan = plan_mapping(model, parse_checkpoint_keys(_layout("tiny", "coltran_core")
                                                     ["checkpoint_keys"]))
    by_name = {name: variable for variable, name, _ in plan.pairs}
    for key in raw.files:
        np.testing.assert_array_equal(by_name[key.replace("|", "/")[:-2]], raw[key])


def test_mismatched_model_is_refused_and_nothing_is_loaded():
    ckpt = os.path.join(require_fixtures("tiny", "coltran_core"), "ckpt")
    model = build_model(_layout("tiny", "color_upsampler")["config"])
    before = [np.array(w) for w in model.weights]
    with pytest.raises(ReferenceCheckpointMismatch) as error:
        load_reference_checkpoint(model, ckpt)
    message = str(error.value)
    assert "missing from the checkpoint" in message
    assert "color_upsampler/input_dense/kernel" in message
    assert "unused by the model" in message and "col_tran_core" in message
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new)


def test_wrong_size_is_refused_naming_the_shapes():
    ckpt = os.path.join(require_fixtures("tiny", "coltran_core"), "ckpt")
    config = _layout("tiny", "coltran_core")["config"]
    config["model"]["decoder"]["ff_size"] = 48
    model = build_model(config)
    with pytest.raises(ReferenceCheckpointMismatch, match=r"wrong shape.*\n.*dense_6/kernel"):
        load_reference_checkpoint(model, ckpt)


def test_missing_checkpoint_path_names_the_path(tmp_path):
    model = build_model(_layout("tiny", "color_upsampler")["config"])
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        load_reference_checkpoint(model, str(tmp_path / "no_such_dir" / "model-1"))
    with pytest.raises(FileNotFoundError, match="No checkpoint in directory"):
        load_reference_checkpoint(model, str(tmp_path))


def _tiny_core(**conditioning):
    return ColTranCore(resolution=8, hidden_size=16, encoder_ff_size=16, encoder_num_heads=2,
                       num_encoder_layers=3, decoder_ff_size=24, decoder_num_heads=2,
                       num_outer_layers=3, num_inner_layers=2, conditioning=conditioning)


VARIANTS = {
    "paper": {},
    "baseline": {"cond_mlp": "", "cond_ln": False, "cond_att_q": False,
                 "cond_att_k": False, "cond_att_v": False},
    "shift_mean_cs": {"cond_mlp": "shift", "cond_ln_sp_ave": "mean", "cond_ln_seq": "cs"},
    "additive_kv_only": {"cond_att_scale": False, "cond_att_q": False,
                         "cond_att_act": "tanh", "cond_mlp_act": "sigmoid"},
}


def _round_trip_cases():
    """Variants. By default the one furthest from the paper's (additive
    conditioning of k and v only, other activations); the rest run with -m slow
    (suite time). The paper conditioning is also checked against the original's
    own fixture (test_tiny_fixture_matches_the_original)."""
    for variant in sorted(VARIANTS):
        marks = [pytest.mark.slow] if variant != "additive_kv_only" else []
        yield pytest.param(variant, id=variant, marks=marks)


@pytest.mark.parametrize("variant", _round_trip_cases())
def test_original_style_checkpoints_of_other_variants_round_trip(tmp_path, variant):
    """Global numbering offsets, >10 auto-numbered layers, both optimizer layouts
    (the layout only changes which slot keys are ignored; one pair of models
    serves both, since building them is what takes the time)."""
    source = _tiny_core(**VARIANTS[variant])
    rgb = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3))
    source(rgb)
    target = _tiny_core(**VARIANTS[variant])
    target(rgb)
    for optimizer in ("legacy", "new"):
        prefix = write_reference_style_checkpoint(source, str(tmp_path / optimizer / "model-1"),
                                                  offset=7, gap=3, optimizer=optimizer)
        for use_ema in (False, True):
            for variable in target.weights:  # nothing left over from the previous load
                variable.assign(np.zeros(variable.shape, variable.dtype))
            load_reference_checkpoint(target, prefix, use_ema=use_ema)
            for theirs, ours in zip(source.weights, target.weights):
                shift = 0.5 if use_ema and theirs.trainable else 0.0
                np.testing.assert_allclose(np.asarray(theirs) + shift, ours, rtol=0,
                                           atol=1e-6, err_msg=f"{optimizer} {use_ema}")


def test_missing_ema_and_extra_keys_are_named(tmp_path):
    model = _tiny_core()
    model(np.zeros((1, 8, 8, 3), int))
    drop = ["col_tran_core_7/auto_logits/bias/ExponentialMovingAverage"]
    extra = {"col_tran_core_7/surprise/kernel:0": np.zeros(2, np.float32)}
    prefix = write_reference_style_checkpoint(model, str(tmp_path / "model-1"), offset=7,
                                              gap=1, drop=drop, extra=extra)
    with pytest.raises(ReferenceCheckpointMismatch) as error:
        load_reference_checkpoint(model, prefix)
    assert "auto_logits/bias/ExponentialMovingAverage" in str(error.value)
    assert "col_tran_core_7/surprise/kernel" in str(error.value)
    # Raw loading does not need the EMA shadow but still refuses the unused key.
    with pytest.raises(ReferenceCheckpointMismatch, match="surprise"):
        load_reference_checkpoint(model, prefix, use_ema=False)


def test_convert_then_load_our_format(tmp_path):
    path = require_fixtures("tiny", "color_upsampler")
    config = _layout("tiny", "color_upsampler")["config"]
    summary = convert_reference_checkpoint(config, os.path.join(path, "ckpt"),
                                           str(tmp_path / "out"))
    assert summary["variables"] == 34 and summary["ema"]
    model, loaded_config = load_model_dir(str(tmp_path / "out"))
    assert loaded_config.model.name == "color_upsampler"
    reference = build_model(config)
    load_reference_checkpoint(reference, os.path.join(path, "ckpt"))
    for a, b in zip(reference.weights, model.weights):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_reference_checkpoint(config, os.path.join(path, "ckpt"), str(tmp_path / "out"))


def test_convert_command(tmp_path):
    path = require_fixtures("tiny", "spatial_upsampler")
    ok = run_command("coltran_tf.commands.convert", "--config=spatial_upsampler:tiny",
                   f"--checkpoint={path}/ckpt", f"--output={tmp_path}/ok", "--raw")
    assert ok.returncode == 0, ok.stderr
    assert "raw weights" in ok.stdout and os.path.isfile(tmp_path / "ok" / "model.weights.h5")
    bad = run_command("coltran_tf.commands.convert", "--config=configs/colorizer.py:tiny",
                      f"--checkpoint={path}/ckpt", f"--output={tmp_path}/bad")
    assert bad.returncode == 2
    assert "does not match" in bad.stderr and "nothing was loaded" in bad.stderr
    assert not os.path.exists(tmp_path / "bad")


def test_a_checkpoint_is_found_from_a_prefix_or_a_directory(tmp_path):
    import tensorflow as tf

    from coltran_tf.checkpoints.reference import resolve_checkpoint_path

    saved = tf.train.Checkpoint(v=tf.Variable(1.0))
    first = saved.write(str(tmp_path / "run" / "model-1"))
    manager = tf.train.CheckpointManager(saved, str(tmp_path / "managed"), max_to_keep=3)
    manager.save(checkpoint_number=1)
    latest = manager.save(checkpoint_number=2)
    assert resolve_checkpoint_path(str(tmp_path / "managed")) == latest
    assert resolve_checkpoint_path(latest) == latest
    # No usable 'checkpoint' file (the original's names its writer's absolute
    # paths): the one .index file there.
    assert resolve_checkpoint_path(str(tmp_path / "run")) == first
    (tmp_path / "run" / "checkpoint").write_text(
        'model_checkpoint_path: "/elsewhere/model-1"\n')
    assert resolve_checkpoint_path(str(tmp_path / "run")) == first
    saved.write(str(tmp_path / "run" / "model-2"))
    with pytest.raises(FileNotFoundError) as error:
        resolve_checkpoint_path(str(tmp_path / "run"))
    assert str(error.value).startswith(
        f"No checkpoint in directory {str(tmp_path / 'run')!r} (no 'checkpoint' file naming "
        "one, and not exactly one .index file). Pass the directory")
    with pytest.raises(FileNotFoundError) as error:
        resolve_checkpoint_path(first + "0")
    assert str(error.value) == (
        f"No checkpoint at {first + '0'!r}: expected {first}0.index. Pass a checkpoint prefix "
        "(DIR/model-N) or the directory that contains it.")
