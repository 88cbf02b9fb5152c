"""The averaged generators: the bias-corrected moving average, kept beside training, never in it."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import RecordWeights, hand_average, random_pairs, tiny_cyclegan

from tf_cyclegan.models.averaging import averaged_copy, update_average


def _averaged(model):
    return [np.asarray(w) for w in model.gen_a2b_ema.weights + model.gen_b2a_ema.weights]


@pytest.mark.slow
def test_the_average_after_n_steps_is_the_hand_computed_one():
    # What a GPU runs by default (XLA, mixed_float16) is checked in the compiled step's test
    # (tests/models/test_cyclegan.py), which trains with averaged generators.
    model = tiny_cyclegan(ema_decay=0.8)
    model.compile()
    record = RecordWeights("gen_a2b", "gen_b2a")
    steps = 5
    model.fit(random_pairs(count=steps), epochs=1, verbose=0, callbacks=[record])
    assert int(np.asarray(model.ema_updates)) == steps
    assert {w.dtype for w in model.gen_a2b_ema.weights} == {"float32"}
    for got, want in zip(_averaged(model), hand_average(record.seen, 0.8)):
        np.testing.assert_allclose(got, want, atol=2e-6)
    # And it is an average, not the last iterate.
    assert max(float(np.abs(a - b).max()) for a, b in zip(_averaged(model), record.seen[-1])) > 1e-4


def test_the_first_update_copies_the_weights_whatever_the_average_held():
    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    average = averaged_copy(network, "average")
    for weight in average.weights:
        weight.assign(np.full(weight.shape, 123.0, np.float32))
    update_average(average, network, 0.999, tf.constant(1))
    for got, want in zip(average.get_weights(), network.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_the_copies_are_seen_by_no_optimizer_and_off_means_no_extra_variables():
    plain, averaged = tiny_cyclegan(), tiny_cyclegan(ema_decay=0.99)
    assert not hasattr(plain, "gen_a2b_ema") and not hasattr(plain, "ema_updates")
    assert plain.get_config().get("ema_decay") is None and "ema_decay" not in plain.get_config()
    assert len(averaged.trainable_variables) == len(plain.trainable_variables)
    generator_weights = len(averaged.gen_a2b.weights) + len(averaged.gen_b2a.weights)
    assert len(averaged.weights) == len(plain.weights) + generator_weights + 1  # the copies and their count
    assert not averaged.gen_a2b_ema.trainable and not averaged.gen_b2a_ema.trainable
    averaged.compile()
    gen_ids = {id(v) for v in averaged.generator_variables}
    assert not gen_ids & {id(v) for v in averaged.gen_a2b_ema.weights + averaged.gen_b2a_ema.weights}


def test_training_is_unchanged_by_averaging():
    """Three steps (eagerly: the graph's averaging is checked against the hand-computed
    average above) train the same four networks with or without averaged generators."""
    keras.utils.set_random_seed(0)
    plain = tiny_cyclegan()
    averaged = tiny_cyclegan(ema_decay=0.9)
    networks = ("gen_a2b", "gen_b2a", "disc_a", "disc_b")
    for name in networks:
        getattr(averaged, name).set_weights(getattr(plain, name).get_weights())
    for model in (plain, averaged):
        model.compile()
        for batch in random_pairs(count=3):
            model.train_step(batch)
    assert int(np.asarray(averaged.ema_updates)) == 3
    for name in networks:
        for a, b in zip(getattr(plain, name).weights, getattr(averaged, name).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


# Saved and loaded with the model: tests/models/test_cyclegan.py's .keras round trip.


def test_generator_picks_the_averaged_ones_by_default_and_raw_on_request():
    plain, averaged = tiny_cyclegan(), tiny_cyclegan(ema_decay=0.9)
    assert averaged.get_generator("a2b") is averaged.gen_a2b_ema
    assert averaged.get_generator("b2a", weights="averaged") is averaged.gen_b2a_ema
    assert averaged.get_generator("b2a", weights="raw") is averaged.gen_b2a
    assert plain.get_generator("a2b") is plain.gen_a2b
    with pytest.raises(ValueError, match="no averaged generators.*weights='raw'"):
        plain.get_generator("a2b", weights="averaged")
    with pytest.raises(ValueError, match="direction must be one of a2b, b2a"):
        plain.get_generator("ab")
    with pytest.raises(ValueError, match="weights must be one of auto, averaged, raw"):
        plain.get_generator("a2b", weights="ema")


@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.1, True, "0.9", float("nan")])
def test_a_decay_outside_0_1_is_refused_naming_it(decay):
    with pytest.raises(ValueError, match="ema_decay must be null or a number between 0 and 1"):
        tiny_cyclegan(ema_decay=decay)
