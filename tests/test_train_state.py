"""train/state.py without training: what the state holds, what its checkpoint
saves and restores, and what an export writes (fast, a tiny model)."""

import json
import os

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from coltran_tf.checkpoints.native import load_model_dir
from coltran_tf.train import state as state_lib
from configs import color_upsampler


def _config(**overrides):
    config = color_upsampler.get_config("tiny")
    config.downsample_res = 8
    for key, value in overrides.items():
        config[key] = value
    return config


def _perturb(state, offset):
    for variable in state.model.trainable_variables:
        variable.assign_add(tf.fill(variable.shape, offset))
    for shadow in state.ema.shadows:
        shadow.assign_add(tf.fill(shadow.shape, 2 * offset))
    for slot in state.optimizer.variables[1:]:
        slot.assign_add(tf.fill(slot.shape, tf.cast(offset, slot.dtype)))
    state.optimizer.iterations.assign_add(7)
    state.stream.variable.assign_add(11)


def _values(state):
    return {"model": [v.numpy() for v in state.model.trainable_variables],
            "ema": [s.numpy() for s in state.ema.shadows],
            "slots": [v.numpy() for v in state.optimizer.variables],
            "random": [v.numpy() for v in state_lib.loop.random_state(state.model)],
            "stream": int(state.stream.variable.numpy())}


def _assert_same(a, b):
    assert a["stream"] == b["stream"]
    for part in ("model", "ema", "slots", "random"):
        assert len(a[part]) == len(b[part]), part
        for x, y in zip(a[part], b[part]):
            np.testing.assert_array_equal(x, y, err_msg=part)


def test_the_state_is_built_whole_and_seeded_by_the_config():
    config = _config(polyak_decay=0.99)
    state = state_lib.build_train_state(config)
    assert state.step == 0
    assert state.ema.decay == 0.99
    # Slots exist before the first step (a restore assigns them at once).
    assert len(state.optimizer.variables) >= 1 + len(state.model.trainable_variables)
    for shadow, variable in zip(state.ema.shadows, state.model.trainable_variables):
        np.testing.assert_array_equal(shadow, variable)
    # The same seed builds the same weights; another seed others.
    again = state_lib.build_train_state(config)
    _assert_same(_values(state), _values(again))
    other = state_lib.build_train_state(_config(seed=config.seed + 1))
    assert any(not np.array_equal(a, b) for a, b in zip(
        _values(state)["model"], _values(other)["model"]))


def test_its_checkpoint_restores_weights_ema_slots_step_stream_and_random_state(tmp_path):
    config = _config()
    state = state_lib.build_train_state(config)
    assert state_lib.restore_latest(state, str(tmp_path)) is None  # nothing there yet
    _perturb(state, 0.25)
    for generator in state_lib.loop.random_state(state.model):
        generator.assign_add(tf.ones_like(generator))
    saved = _values(state)
    path = state.checkpoint.save(os.path.join(tmp_path, "ckpt"))
    fresh = state_lib.build_train_state(config)
    assert state_lib.restore_latest(fresh, str(tmp_path)) == path
    _assert_same(_values(fresh), saved)
    assert fresh.step == 7


def test_a_checkpoint_of_another_model_is_refused_naming_the_fix(tmp_path):
    state_lib.build_train_state(_config()).checkpoint.save(os.path.join(tmp_path, "ckpt"))
    wider = _config()
    wider.model.hidden_size = wider.model.ff_size = 16
    with pytest.raises(state_lib.CheckpointMismatch) as error:
        state_lib.restore_latest(state_lib.build_train_state(wider), str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"The checkpoint {tmp_path / 'ckpt-1'} does not match this "
                              "config (")
    assert message.endswith(
        "). It was written by another model or config: resume with the config it was trained "
        f"with, or start a new run with another --logdir (nothing was changed in {tmp_path}).")


def test_an_export_writes_the_chosen_weights_and_keeps_training_weights(tmp_path):
    config = _config(polyak_decay=0.9)
    state = state_lib.build_train_state(config)
    _perturb(state, 0.5)
    before = _values(state)
    assert state_lib.export_kind(config) == "ema"  # the default, as the original evaluates
    directory = state_lib.export_model(state, config, str(tmp_path / "ema"),
                                       metadata={"source": "test"})
    assert directory == str(tmp_path / "ema")
    model, loaded = load_model_dir(directory)
    assert loaded.to_dict() == config.to_dict()
    for exported, shadow in zip(model.trainable_variables, before["ema"]):
        np.testing.assert_array_equal(exported, shadow)
    with open(os.path.join(directory, "metadata.json")) as f:
        assert json.load(f) == {"weights": "ema", "step": 7, "polyak_decay": 0.9,
                                "source": "test"}
    _assert_same(_values(state), before)  # training goes on from the raw weights
    # An export over an earlier one replaces it.
    config.export_weights = "raw"
    assert state_lib.export_kind(config) == "raw"
    state_lib.export_model(state, config, directory)
    model, _ = load_model_dir(directory)
    for exported, raw in zip(model.trainable_variables, before["model"]):
        np.testing.assert_array_equal(exported, raw)
    with open(os.path.join(directory, "metadata.json")) as f:
        assert json.load(f)["weights"] == "raw"
    _assert_same(_values(state), before)
    config.export_weights = "median"
    with pytest.raises(ValueError) as error:
        state_lib.export_kind(config)
    assert str(error.value) == "config.export_weights='median'; choose one of ('ema', 'raw')."
    assert state_lib.default_export_dir("run") == os.path.join("run", "export")
    # A config from before the option (an original's) exports the average.
    assert state_lib.export_kind(ml_collections.ConfigDict({"polyak_decay": 0.999})) == "ema"
