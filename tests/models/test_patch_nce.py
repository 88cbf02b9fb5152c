"""PatchNCE: the feature head, the patch sampling and the loss, against the official
PatchSampleF and PatchNCELoss (tests/fixtures/cut/patchnce.npz)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES

from tf_cyclegan.models.patch_nce import PatchSampleHead, patch_nce_loss, sample_patch_ids
from tf_cyclegan.torch_import.cut import load_official_head


@pytest.fixture(scope="module")
def official():
    return {**np.load(f"{FIXTURES}/cut/networks.npz"), **np.load(f"{FIXTURES}/cut/patchnce.npz")}


def official_head(official):
    channels = [official[f"feature_{i}"].shape[-1] for i in range(5)]
    return load_official_head(PatchSampleHead(channels, units=16), official, prefix="head/")


@pytest.mark.onednn  # fidelity to the official code, on both kernel libraries
def test_head_samples_and_projects_as_the_official_patch_sample_f(official):
    head = official_head(official)
    features = [official[f"feature_{i}"] for i in range(5)]
    sampled = head(features, [official[f"ids_{i}"] for i in range(5)])
    for i, s in enumerate(sampled):
        assert s.dtype == tf.float32
        np.testing.assert_allclose(s.numpy(), official[f"sampled_{i}"], rtol=0, atol=1e-5, err_msg=f"layer {i}")
        assert np.linalg.norm(s.numpy(), axis=-1).max() <= 1  # x / (|x| + 1e-7): below 1 for tiny x


@pytest.mark.onednn  # fidelity to the official code, on both kernel libraries
def test_loss_and_its_gradient_are_the_official_patch_nce_loss(official):
    query, key = tf.constant(official["query"]), tf.constant(official["key"])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([query, key])
        loss = patch_nce_loss(query, key, temperature=0.07)
        mean = tf.reduce_mean(loss)
    np.testing.assert_allclose(loss.numpy(), official["loss"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(tape.gradient(mean, query).numpy(), official["query_gradient"], rtol=0, atol=1e-5)
    assert tape.gradient(mean, key) is None  # the keys are constants, as the official detach()


def test_negatives_come_from_the_same_image_only():
    rng = np.random.default_rng(0)
    query = tf.math.l2_normalize(rng.normal(size=(2, 5, 4)).astype("float32"), axis=-1)
    key = tf.math.l2_normalize(rng.normal(size=(2, 5, 4)).astype("float32"), axis=-1)
    other = tf.concat([key[:1], -key[1:]], axis=0)  # a different second image
    np.testing.assert_allclose(patch_nce_loss(query, key)[0], patch_nce_loss(query, other)[0], atol=1e-6)
    assert np.abs(patch_nce_loss(query, key)[1] - patch_nce_loss(query, other)[1]).max() > 1e-3


def test_patch_ids_are_distinct_in_range_at_most_the_positions_and_compile_under_xla():
    features = [tf.zeros((2, 8, 8, 3)), tf.zeros((2, 3, 4, 3))]
    seed = keras.random.SeedGenerator(1)
    draw = tf.function(lambda: sample_patch_ids(features, num_patches=20, seed=seed), jit_compile=True)
    first, second = draw(), draw()
    assert [len(ids) for ids in first] == [20, 12]
    for ids, size in zip(first, (64, 12)):
        ids = ids.numpy()
        assert len(set(ids)) == len(ids) and ids.min() >= 0 and ids.max() < size
    assert set(first[0].numpy()) != set(second[0].numpy())  # a new draw each step
    with pytest.raises(ValueError, match="known size"):
        sample_patch_ids([keras.KerasTensor((2, None, 8, 3))])


def test_head_round_trips_its_config_and_weights():
    head = PatchSampleHead([3, 8], units=16, name="feature_head")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    assert isinstance(restored, PatchSampleHead) and restored.get_config() == head.get_config()
    assert len(head.trainable_weights) == 8  # two Dense layers per tapped layer, built before any data
    restored.set_weights(head.get_weights())  # (saved in .keras files with the CUT model: tests/models/test_cut.py)
    features = [tf.random.normal((1, 4, 4, 3)), tf.random.normal((1, 2, 2, 8))]
    ids = [tf.range(6), tf.range(4)]
    for a, b in zip(head(features, ids), restored(features, ids)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_head_under_mixed_precision_returns_float32():
    head = PatchSampleHead([3], units=8, dtype="mixed_float16")
    (sampled,) = head([tf.random.normal((2, 4, 4, 3))], [tf.range(5)])
    assert sampled.dtype == tf.float32 and head.trainable_weights[0].dtype == "float32"


@pytest.mark.parametrize("bad", [dict(channels=[]), dict(channels=[3, 0]), dict(channels=[3], units=0)])
def test_head_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match="Received"):
        PatchSampleHead(**bad)


def test_a_patch_the_head_maps_to_zero_gets_a_zero_gradient_not_nan():
    head = PatchSampleHead([2], units=4)
    head.set_weights([np.ones((2, 4), "float32"), np.zeros(4, "float32"), np.eye(4, dtype="float32"),
                      np.zeros(4, "float32")])
    features = tf.constant([[[[-1.0, -1.0], [1.0, 2.0]]]])  # the first patch: ReLU(x @ 1) = 0
    with tf.GradientTape() as tape:
        (sampled,) = head([features], [tf.range(2)])
        loss = tf.reduce_sum(sampled * tf.constant([1.0, 2.0, 3.0, 4.0]))
    assert not sampled[0, 0].numpy().any()
    assert all(np.isfinite(g.numpy()).all() for g in tape.gradient(loss, head.trainable_weights))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_the_head_computes_in_float32_under_any_policy_and_from_any_saved_config(policy):
    """Its gradients overflow float16 where a projection is short (the normalisation divides
    by its length): a float16 head was never updated under mixed_float16."""
    keras.mixed_precision.set_global_policy(policy)
    head = PatchSampleHead([3, 8], units=16)
    saved_under_the_policy = {**head.get_config(), "dtype": policy}  # as an earlier version saved it
    for layer in (head, PatchSampleHead.from_config(saved_under_the_policy)):
        assert layer.compute_dtype == "float32" and layer.variable_dtype == "float32"
        assert {sub.compute_dtype for sub in layer.hidden_layers + layer.output_layers} == {"float32"}
    features = [tf.ones((1, 4, 4, 3), policy[6:]), tf.ones((1, 2, 2, 8), policy[6:])]
    short = [tf.fill((1, 4, 4, 3), 1e-6), tf.fill((1, 2, 2, 8), 1e-6)]
    for inputs in (features, short):
        with tf.GradientTape() as tape:
            projected = head([tf.cast(x, policy[6:]) for x in inputs], [tf.range(3), tf.range(2)])
            loss = sum(tf.reduce_sum(p[..., 0]) for p in projected)
        gradients = tape.gradient(loss, head.trainable_variables)
        assert all(p.dtype == tf.float32 for p in projected)
        assert all(bool(tf.reduce_all(tf.math.is_finite(g))) for g in gradients)
