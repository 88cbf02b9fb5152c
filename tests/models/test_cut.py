"""The CUT model: its modes, one training step against the official code's (tests/fixtures/cut/
cut_step.npz, fastcut_step.npz), XLA, mixed precision, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, TINY_SIZE

from tf_cyclegan.models.cut import CUT, LOSS_NAMES, MODES, build_cut
from tf_cyclegan.models.patch_nce import PatchSampleHead
from tf_cyclegan.torch_import.cut import (
    discriminator_weight_names,
    generator_weight_names,
    load_official_discriminator,
    load_official_generator,
    load_official_head,
)

LEARNING_RATE = 2e-4


TINY_NCE_LAYERS = ("stem_pad", "down1_conv", "down2_conv", "res1_add")


def tiny_cut(mode="cut", **kwargs):
    """A CUT of 4-filter networks, one residual block (so four taps), 16 patches of 8 units."""
    kwargs.setdefault("num_residual_blocks", 1)
    kwargs.setdefault("nce_layers", TINY_NCE_LAYERS if kwargs["num_residual_blocks"] < 5 else None)
    return build_cut(mode, filters=4, disc_filters=4, head_units=8, num_patches=16, seed=0, **kwargs)


def tiny_batch(seed=0, batch=2):
    rng = np.random.default_rng(seed)
    return tuple(rng.uniform(-1, 1, (batch, TINY_SIZE, TINY_SIZE, 3)).astype("float32") for _ in range(2))


def test_build_cut_has_each_modes_official_defaults():
    cut, fastcut = tiny_cut("cut", num_residual_blocks=5), tiny_cut("fastcut")
    assert (cut.lambda_gan, cut.lambda_nce, cut.nce_identity, cut.flip_equivariance) == (1.0, 1.0, True, False)
    assert (fastcut.lambda_gan, fastcut.lambda_nce, fastcut.nce_identity, fastcut.flip_equivariance) == (
        1.0, 10.0, False, True)
    assert set(MODES) == {"cut", "fastcut"} and tiny_cut("fastcut", lambda_nce=2).lambda_nce == 2.0
    assert cut.nce_layers == ["stem_pad", "down1_conv", "down2_conv", "res1_add", "res5_add"]
    assert cut.feature_head.channels == [3, 8, 16, 16, 16]
    with pytest.raises(ValueError, match="mode='cyclegan'"):
        build_cut("cyclegan")
    with pytest.raises(ValueError, match="feature_head.channels"):
        CUT(cut.generator, cut.discriminator, PatchSampleHead([3, 8], units=8))


def official_step(mode):
    """Our model with the official step's starting weights, and what that step gave."""
    initial = dict(np.load(f"{FIXTURES}/cut/networks.npz"))
    model = build_cut(mode, filters=4, num_residual_blocks=9, disc_filters=4, head_units=16, num_patches=100)
    load_official_generator(model.generator, initial, prefix="generator/")
    load_official_discriminator(model.discriminator, initial, prefix="discriminator/")
    load_official_head(model.feature_head, initial, prefix="head/")
    return model, dict(np.load(f"{FIXTURES}/cut/{mode}_step.npz"))


def updated_weights(network, names, step, prefix):
    """(ours, official, feeds_instance_norm) for each weight of `network` after the step."""
    for layer_name, module in names.items():
        layer = network.get_layer(layer_name)
        official_kernel = step[f"{prefix}{module}.weight"].transpose(2, 3, 1, 0)
        yield layer.kernel.numpy(), official_kernel, False
        inert = layer_name not in ("head_conv", "logits_conv", "layer0_conv")
        yield layer.bias.numpy(), step[f"{prefix}{module}.bias"], inert


@pytest.mark.parametrize("mode", ["cut", "fastcut"])
def test_one_step_is_the_official_step(mode):
    """From the same weights, batch, patch ids and flip (FastCUT's input flipped), one step of
    D then G and F with Adam gives the official losses and weights.

    Two kinds of weight are compared loosely, for what Adam's first step does with a gradient
    that float32 rounding decides: it moves every weight by about the learning rate times the
    sign of its gradient. The biases of the convolutions an instance norm follows have a
    gradient of exactly zero in exact arithmetic (the norm removes them), so theirs is
    rounding in both frameworks (they change no output). And a few kernel elements whose
    gradient is near zero take the other sign: measured, 48 of the 41,000 of CUT's generator
    (none in FastCUT's), none to 2 of the discriminator's. Those stay within the step's bound
    of twice the learning rate, and at most 0.5 % of a network's kernel elements may.
    """
    model, step = official_step(mode)
    model.compile()
    patch_ids = {"a2b": [step[f"ids_a2b_{i}"] for i in range(5)]}
    if mode == "cut":
        patch_ids["identity"] = [step[f"ids_identity_{i}"] for i in range(5)]
    losses = model.update(step["real_a"], step["real_b"], flip=bool(step["flip"]), patch_ids=patch_ids)

    mean = {name: float(tf.reduce_mean(value)) for name, value in losses.items()}
    expected = {"disc_b": step["loss_D"], "gan_a2b": step["loss_G_GAN"], "gen_total": step["loss_G"],
                "nce_a2b": step["loss_NCE"] / model.lambda_nce}
    if mode == "cut":
        expected["nce_identity_b"] = step["loss_NCE_Y"] / model.lambda_nce
    assert set(mean) == set(expected)
    for name, value in expected.items():
        assert mean[name] == pytest.approx(float(value), rel=1e-5, abs=1e-6), name

    head = PatchSampleHead(model.feature_head.channels, units=16)
    load_official_head(head, step, prefix="head/")
    for ours, official in zip(model.feature_head.weights, head.weights):
        np.testing.assert_allclose(ours.numpy(), official.numpy(), rtol=0, atol=1e-4)

    for network, names, prefix in ((model.generator, generator_weight_names(9), "generator/"),
                                   (model.discriminator, discriminator_weight_names(3), "discriminator/")):
        far = total = 0
        for ours, official, inert in updated_weights(network, names, step, prefix):
            difference = np.abs(ours - official)
            assert difference.max() <= 2 * LEARNING_RATE + 1e-6
            if not inert:
                far += int((difference > 1e-4).sum())
                total += difference.size
        assert far <= 0.005 * total, f"{network.name}: {far} of {total} kernel elements"


def test_train_step_compiles_under_xla_and_reports_every_loss_by_name():
    model = tiny_cut("cut")
    model.compile(jit_compile=True)
    step = tf.function(model.train_step, jit_compile=True)
    before = [w.numpy() for w in model.feature_head.weights]
    logs = step(tiny_batch())
    assert sorted(logs) == sorted(LOSS_NAMES)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert any(np.abs(b - a.numpy()).max() > 0 for b, a in zip(before, model.feature_head.weights))


def test_fastcut_train_step_compiles_under_xla_with_its_random_flip():
    model = tiny_cut("fastcut")
    model.compile(jit_compile=True)
    step = tf.function(model.train_step, jit_compile=True)
    logs = [step(tiny_batch(seed)) for seed in range(2)]
    assert sorted(logs[0]) == ["disc_b", "gan_a2b", "gen_total", "nce_a2b"]
    assert all(np.isfinite(float(v)) for step_logs in logs for v in step_logs.values())


def test_mixed_float16_scales_every_optimizers_loss():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_cut("cut")
    model.compile()
    for optimizer in (model.gen_optimizer, model.disc_optimizer, model.head_optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    logs = tf.function(model.train_step)(tiny_batch())
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert model(tiny_batch()[0]).dtype == tf.float32
    assert model.generator.get_layer("res1_conv1").compute_dtype == "float16"
    assert all(v.dtype == "float32" for v in model.feature_head.trainable_variables)


def test_the_flip_mirrors_the_input_for_every_network():
    """FastCUT's flipped step: D is trained on the translation of the mirrored input, and the
    NCE term compares the input with its translation's features mirrored back."""
    model = tiny_cut("fastcut")
    model.compile()
    real_a, real_b = tiny_batch()
    mirrored_a = real_a[:, :, ::-1]
    fake_b = model.generator(mirrored_a)
    ids = [tf.range(10)] * len(TINY_NCE_LAYERS)
    expected = model.nce_loss(real_a, fake_b, flip=True, patch_ids=ids)
    unflipped = model.nce_loss(real_a, fake_b, flip=False, patch_ids=ids)
    losses = model.update(real_a, real_b, flip=True, patch_ids={"a2b": ids})
    # The generator's loss is taken before its own update, with the discriminator just updated.
    np.testing.assert_allclose(losses["nce_a2b"].numpy(), expected.numpy(), rtol=1e-5)
    assert np.abs(expected.numpy() - unflipped.numpy()).max() > 1e-4


def test_save_and_load_keep_config_weights_and_optimizers(tmp_path):
    model = tiny_cut("fastcut")
    model.compile(jit_compile=False)
    model.update(*tiny_batch())
    path = str(tmp_path / "cut.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, CUT)
    for key in ("nce_layers", "lambda_gan", "lambda_nce", "nce_identity", "flip_equivariance", "num_patches",
                "temperature", "seed"):
        assert loaded.get_config()[key] == model.get_config()[key], key
    assert loaded.feature_head.get_config() == model.feature_head.get_config()
    real_a = tiny_batch()[0]
    np.testing.assert_array_equal(loaded(real_a).numpy(), model(real_a).numpy())
    for ours, theirs in zip(model.feature_head.weights, loaded.feature_head.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert int(loaded.head_optimizer.iterations) == 1 and int(loaded.disc_optimizer.iterations) == 1


def test_compile_refuses_a_loss_or_a_single_optimizer():
    with pytest.raises(ValueError, match="loss="):
        tiny_cut().compile(loss="mse")


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_fit_and_evaluate_run_jit_compiled(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = tiny_cut("cut")
    model.compile(jit_compile=True)
    data = tf.data.Dataset.from_tensor_slices(tiny_batch(batch=4)).batch(2)
    history = model.fit(data, epochs=1, verbose=0)
    assert sorted(history.history) == sorted(LOSS_NAMES)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert sorted(model.evaluate(data, verbose=0, return_dict=True)) == sorted(LOSS_NAMES)
