"""What CUT shares with CycleGAN for the code that trains, translates and exports either
(`directions`, `network_names`, `training_optimizers`, `get_generator`), its averaged
generator (`ema_decay`), and the `.keras` round trip of the whole model."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import hand_average, tiny_cyclegan
from test_cut import tiny_batch, tiny_cut

from tf_cyclegan.choices import NETWORKS
from tf_cyclegan.models.cut import CUT
from tf_cyclegan.models.cyclegan import CycleGAN


def test_both_models_name_their_directions_networks_and_optimizers():
    assert CUT.directions == ("a2b",) and CycleGAN.directions == ("a2b", "b2a")
    assert CUT.network_names == ("generator", "discriminator", "feature_head") and CycleGAN.network_names == NETWORKS
    cut, cyclegan = tiny_cut(), tiny_cyclegan()
    for model in (cut, cyclegan):
        assert all(isinstance(getattr(model, name), keras.layers.Layer) for name in model.network_names)
        model.compile()
    assert cut.training_optimizers == [cut.gen_optimizer, cut.disc_optimizer, cut.head_optimizer]
    assert cyclegan.training_optimizers == [cyclegan.gen_optimizer, cyclegan.disc_optimizer]


def test_get_generator_is_cyclegans_for_the_one_direction():
    plain, averaged = tiny_cut(), tiny_cut(ema_decay=0.9)
    assert plain.get_generator() is plain.generator and plain.get_generator("a2b", "raw") is plain.generator
    assert averaged.get_generator("a2b") is averaged.generator_ema
    assert averaged.get_generator(weights="averaged") is averaged.generator_ema
    assert averaged.get_generator(weights="raw") is averaged.generator
    with pytest.raises(ValueError, match="^CUT translates one way, A to B: it has no b2a generator$"):
        plain.get_generator("b2a")
    with pytest.raises(ValueError, match="^FastCUT translates one way, A to B: it has no b2a generator$"):
        tiny_cut("fastcut").get_generator("b2a")
    with pytest.raises(ValueError, match="no averaged generator.*weights='raw'"):
        plain.get_generator(weights="averaged")
    with pytest.raises(ValueError, match="direction must be one of a2b. Received: 'ab'"):
        plain.get_generator("ab")
    with pytest.raises(ValueError, match="weights must be one of auto, averaged, raw"):
        plain.get_generator(weights="ema")
    with pytest.raises(ValueError, match="ema_decay must be null or a number between 0 and 1"):
        tiny_cut(ema_decay=1.0)


def test_off_means_no_extra_variables_and_no_config_key():
    plain, averaged = tiny_cut(), tiny_cut(ema_decay=0.99)
    assert not hasattr(plain, "generator_ema") and not hasattr(plain, "ema_updates")
    assert "ema_decay" not in plain.get_config() and averaged.get_config()["ema_decay"] == 0.99
    assert len(averaged.trainable_variables) == len(plain.trainable_variables)
    assert len(averaged.weights) == len(plain.weights) + len(averaged.generator.weights) + 1
    assert not averaged.generator_ema.trainable
    averaged.compile()
    trained = {id(v) for optimizer in averaged.training_optimizers for v in optimizer.variables}
    assert not trained & {id(v) for v in averaged.generator_ema.weights}


def _pairs(steps):
    return tf.data.Dataset.from_tensor_slices(tiny_batch(batch=2 * steps)).batch(2)


def test_the_average_after_n_steps_is_the_hand_computed_one():
    """Three eager steps; in fit's compiled graph (XLA, mixed_float16) in tests/models/test_cut.py."""
    model = tiny_cut(ema_decay=0.8)
    model.compile(jit_compile=False)
    seen = []
    for batch in _pairs(3):
        model.train_step(batch)
        seen.append([np.asarray(w) for w in model.generator.weights])
    assert int(np.asarray(model.ema_updates)) == 3
    averaged = [np.asarray(w) for w in model.generator_ema.weights]
    for got, want in zip(averaged, hand_average(seen, 0.8)):
        np.testing.assert_allclose(got, want, atol=2e-6)
    assert max(float(np.abs(a - b).max()) for a, b in zip(averaged, seen[-1])) > 1e-5


def test_training_is_unchanged_by_averaging():
    plain, averaged = tiny_cut(), tiny_cut(ema_decay=0.9)
    for name in CUT.network_names:
        getattr(averaged, name).set_weights(getattr(plain, name).get_weights())
    ids = {"a2b": [tf.range(16)] * 4, "identity": [tf.range(1, 17)] * 4}
    for model in (plain, averaged):
        model.compile()
        for seed in range(2):
            model.update(*tiny_batch(seed), patch_ids=ids)
    for name in CUT.network_names:
        for a, b in zip(getattr(plain, name).weights, getattr(averaged, name).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


def _as_saved(config):
    """A config as a `.keras` file stores it: JSON, which has lists but no tuples (Keras'
    `build_config` holds input shapes as tuples in memory; they read back as lists)."""
    return json.loads(json.dumps(config))


@pytest.mark.slow  # trains a step, saves and loads
@pytest.mark.parametrize("mode, ema_decay", [("cut", 0.9), ("fastcut", None)])
def test_save_and_load_keep_the_whole_config_every_weight_and_every_output(tmp_path, mode, ema_decay):
    model = tiny_cut(mode, ema_decay=ema_decay)
    model.compile(jit_compile=False)
    model.train_step(tiny_batch())  # one step, eagerly (no graph to trace): the optimizers' moments move
    assert [int(optimizer.iterations) for optimizer in model.training_optimizers] == [1, 1, 1]
    model.save(tmp_path / "cut.keras")
    loaded = keras.saving.load_model(tmp_path / "cut.keras")

    assert type(loaded) is CUT
    assert _as_saved(loaded.get_config()) == _as_saved(model.get_config())
    assert loaded.get_compile_config() == model.get_compile_config()
    assert [v.path for v in loaded.weights] == [v.path for v in model.weights]
    for ours, theirs in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs), err_msg=ours.path)
    for optimizer, restored in zip(model.training_optimizers, loaded.training_optimizers):
        assert type(restored) is type(optimizer) and restored.get_config() == optimizer.get_config()
        assert [v.path for v in restored.variables] == [v.path for v in optimizer.variables]
        for ours, theirs in zip(optimizer.variables, restored.variables):
            np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs), err_msg=ours.path)

    real_a, real_b = tiny_batch(seed=1)
    np.testing.assert_array_equal(loaded(real_a).numpy(), model(real_a).numpy())
    np.testing.assert_array_equal(loaded.get_generator()(real_a).numpy(), model.get_generator()(real_a).numpy())
    np.testing.assert_array_equal(loaded.discriminator(real_b).numpy(), model.discriminator(real_b).numpy())
    ids = [tf.range(8)] * len(model.nce_layers)
    projected = [m.feature_head(m.encoder(real_a), ids) for m in (model, loaded)]
    for ours, theirs in zip(*projected):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
