"""The CUT model: its modes, one training step against the official code's (tests/fixtures/cut/
cut_step.npz, fastcut_step.npz), XLA, mixed precision, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, TINY_SIZE, RecordWeights, hand_average

from tf_cyclegan.models.cut import CUT, LOSS_NAMES, MODES, build_cut
from tf_cyclegan.models.patch_nce import PatchSampleHead
from tf_cyclegan.models.pytorch_adam import PyTorchAdam
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


def official_patch_ids(step):
    ids = {"a2b": [step[f"ids_a2b_{i}"] for i in range(5)]}
    if "ids_identity_0" in step:
        ids["identity"] = [step[f"ids_identity_{i}"] for i in range(5)]
    return ids


# One ReLU input of the CUT step sits at rounding distance from zero: res9_norm1's, for B's
# first image (row 4 of the generator's batch cat(real_a, real_b)), at row 1, column 0,
# channel 10 of the 8x8 map. Its conv output there is 0.0038679 and its channel mean the same
# to 1e-7 (channel std 0.05): x - mean is +5.9e-8 in the official float64 rerun, +1.2e-7 in
# the official float32 step and -4.0e-8 here (both float32 errors are ~1e-7, after 30
# layers). So PyTorch's ReLU passes that element's gradient and ours stops it; through the
# identity PatchNCE that moves every generator gradient before res9 by about 1 % of its
# layer's largest, and Adam's sign-like first step turns that into 48 elements 2*lr apart.
KINK = (2, 1, 0, 10)


def decide_the_kink_as_float64_does(model):
    """Moves that one conv output by +2e-7 (a float32 rounding of it) to the side exact
    arithmetic puts it on; nothing else changes by more than rounding."""
    conv = model.generator.get_layer("res9_conv1")
    call = conv.call
    nudge = np.zeros((4, 8, 8, 16), "float32")
    nudge[KINK] = 2e-7
    object.__setattr__(conv, "call", lambda *args, **kwargs: call(*args, **kwargs) + nudge)


def inert_bias(layer_name):
    """Whether a convolution's bias is removed by the instance norm right after it and read by
    nothing else (not so for the PatchNCE taps down1_conv and down2_conv, read before their norm)."""
    return layer_name not in ("head_conv", "logits_conv", "layer0_conv", "down1_conv", "down2_conv")


def updated_weights(network, names, step, prefix):
    """(ours, official, inert) for each weight of `network` after the step."""
    for layer_name, module in names.items():
        layer = network.get_layer(layer_name)
        official_kernel = step[f"{prefix}{module}.weight"].transpose(2, 3, 1, 0)
        yield layer.kernel.numpy(), official_kernel, False
        yield layer.bias.numpy(), step[f"{prefix}{module}.bias"], inert_bias(layer_name)


@pytest.mark.onednn  # fidelity to the official code, on both kernel libraries
@pytest.mark.parametrize("mode", ["cut", "fastcut"])
def test_one_step_is_the_official_step(mode):
    """From the same weights, batch, patch ids and flip (FastCUT's input flipped), one step of
    D then G and F with the official Adam gives the official losses (within 1e-5 relative) and
    every weight within 1e-4 (measured: 4e-9 for G, 8e-8 for D, 2e-9 for F).

    Two things stand between the two floats and are set aside here, each shown by a test below:
    - the biases of the convolutions an instance norm follows: the norm removes them, so
      their gradient is zero in exact arithmetic and rounding in both frameworks; Adam's first
      step moves each by about lr times that rounding's sign. They change no output.
    - in CUT, one ReLU whose input is at rounding distance from zero (`KINK`): the step is
      run with that one value decided as exact arithmetic decides it. Left to our rounding,
      48 of the generator's 45,531 weights end up 2*lr from the official's, nothing else moves.
    """
    model, step = official_step(mode)
    model.compile()
    if mode == "cut":
        decide_the_kink_as_float64_does(model)
    losses = model.update(step["real_a"], step["real_b"], flip=bool(step["flip"]), patch_ids=official_patch_ids(step))

    mean = {name: float(tf.reduce_mean(value)) for name, value in losses.items()}
    expected = {"disc_b": step["loss_D"], "gan_a2b": step["loss_G_GAN"], "gen_total": step["loss_G"],
                "nce_a2b": step["loss_NCE"] / model.lambda_nce}
    if mode == "cut":
        expected["nce_identity_b"] = step["loss_NCE_Y"] / model.lambda_nce
    assert set(mean) == set(expected)
    for name, value in expected.items():
        assert mean[name] == pytest.approx(float(value), rel=1e-5), name

    head = PatchSampleHead(model.feature_head.channels, units=16)
    load_official_head(head, step, prefix="head/")
    for ours, official in zip(model.feature_head.weights, head.weights):
        np.testing.assert_allclose(ours.numpy(), official.numpy(), rtol=0, atol=1e-4)

    for network, names, prefix in ((model.generator, generator_weight_names(9), "generator/"),
                                   (model.discriminator, discriminator_weight_names(3), "discriminator/")):
        for ours, official, inert in updated_weights(network, names, step, prefix):
            np.testing.assert_allclose(ours, official, rtol=0, atol=2 * LEARNING_RATE + 1e-6 if inert else 1e-4)


def recorded_gradients(model):
    """Makes each optimizer of `model` keep the gradients it is given, by variable path."""
    recorded = {}
    for optimizer in (model.gen_optimizer, model.disc_optimizer, model.head_optimizer):
        def apply_gradients(grads_and_vars, apply=optimizer.apply_gradients):
            pairs = list(grads_and_vars)
            recorded.update({variable.path: gradient.numpy() for gradient, variable in pairs})
            return apply(pairs)

        object.__setattr__(optimizer, "apply_gradients", apply_gradients)
    return recorded


def official_gradients(model, names, gradients, prefix):
    """(name, ours' variable, the official gradient in Keras' layout, feeds_instance_norm)."""
    for layer_name, module in names.items():
        layer = model.get_layer(layer_name)
        yield layer_name, layer.kernel, gradients[f"{prefix}/{module}.weight"].transpose(2, 3, 1, 0), False
        yield f"{layer_name}.bias", layer.bias, gradients[f"{prefix}/{module}.bias"], inert_bias(layer_name)


@pytest.mark.onednn  # fidelity to the official code, on both kernel libraries
def test_the_cut_steps_gradients_are_the_officials_layer_by_layer():
    """D's gradient, then G's and F's (taken with the D just updated), each weight against
    tests/fixtures/cut/cut_gradients.npz: within 1e-4 of its layer's largest (measured: D
    3e-6, G 2.4e-5, F 1.3e-5). The biases an instance norm removes have a gradient of rounding
    size on both sides: below 1e-3 of their convolution kernel's largest (measured 1.5e-4)."""
    model, step = official_step("cut")
    model.compile()
    decide_the_kink_as_float64_does(model)
    ours = recorded_gradients(model)
    model.update(step["real_a"], step["real_b"], patch_ids=official_patch_ids(step))
    official = dict(np.load(f"{FIXTURES}/cut/cut_gradients.npz"))
    for network, names, prefix in ((model.generator, generator_weight_names(9), "generator"),
                                   (model.discriminator, discriminator_weight_names(3), "discriminator")):
        kernel_scale = {}
        for name, variable, theirs, inert in official_gradients(network, names, official, prefix):
            mine = ours[variable.path]
            if inert:
                scale = kernel_scale[name.split(".")[0]]
                assert np.abs(mine).max() < 1e-3 * scale and np.abs(theirs).max() < 1e-3 * scale, name
                continue
            scale = np.abs(theirs).max()
            kernel_scale.setdefault(name, scale)
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-4 * scale, err_msg=name)
    head = PatchSampleHead(model.feature_head.channels, units=16)
    load_official_head(head, {k[len("head/"):]: v for k, v in official.items() if k.startswith("head/")})
    for variable, theirs in zip(model.feature_head.trainable_variables, head.trainable_variables):
        theirs = theirs.numpy()
        np.testing.assert_allclose(ours[variable.path], theirs, rtol=0, atol=1e-4 * np.abs(theirs).max(),
                                   err_msg=variable.path)


def test_the_generator_gap_left_to_rounding_is_one_relu_input_at_zero():
    """Evidence for `KINK`: with our own rounding there, the CUT step's generator differs from
    the official's in weights 2*lr apart, and only because of that one ReLU input, which is
    within 2e-7 of its channel's mean (the official float64: +5.9e-8), 0.0039 in value."""
    model, step = official_step("cut")
    real = tf.concat([step["real_a"], step["real_b"]], axis=0)
    taps = keras.Model(model.generator.input, model.generator.get_layer("res9_conv1").output)
    conv = taps(real).numpy()[KINK[0], :, :, KINK[3]]
    assert abs(conv[KINK[1], KINK[2]] - conv.mean()) < 2e-7 < 1e-4 * conv.std()

    model.compile()
    model.update(step["real_a"], step["real_b"], patch_ids=official_patch_ids(step))
    far = []
    for ours, official, inert in updated_weights(model.generator, generator_weight_names(9), step, "generator/"):
        if not inert:
            far.append(np.abs(ours - official).max())
    assert 1e-4 < max(far) <= 2 * LEARNING_RATE + 1e-6  # only Adam's sign-like first step apart


def test_the_optimizer_is_pytorchs_adam():
    """Adam's first step is lr * g / (|g| + eps) in PyTorch; Keras' own Adam would give
    lr * g / (|g| + eps / sqrt(1 - beta_2)), 32 times the epsilon."""
    model = tiny_cut()
    model.compile()
    for optimizer in (model.gen_optimizer, model.disc_optimizer, model.head_optimizer):
        assert isinstance(optimizer, PyTorchAdam)
        variable = keras.Variable(np.zeros(3, "float32"))
        gradient = np.array([1e-6, -1e-8, 0.0], "float32")
        optimizer = PyTorchAdam.from_config(optimizer.get_config())
        optimizer.apply_gradients([(gradient, variable)])
        np.testing.assert_allclose(variable.numpy(), -LEARNING_RATE * gradient / (np.abs(gradient) + 1e-8),
                                   rtol=1e-5, atol=1e-12)
    keras_adam = keras.optimizers.Adam(LEARNING_RATE, beta_1=0.5, epsilon=1e-8)
    variable = keras.Variable(np.zeros(1, "float32"))
    keras_adam.apply_gradients([(np.array([1e-6], "float32"), variable)])
    assert float(variable[0]) == pytest.approx(-0.76 * LEARNING_RATE, rel=1e-2)


@pytest.mark.slow  # trains
def test_a_jit_compiled_mixed_float16_fit_runs_both_modes_paths_scales_every_loss_and_averages():
    """What a GPU runs by default (XLA, mixed_float16), with CUT's identity PatchNCE and
    FastCUT's random flip in one compiled step: every optimizer's loss scaled and its steps
    applied once the scale has settled, every loss finite, the averaged generator the
    hand-computed average, and `evaluate` compiled as well."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_cut("cut", flip_equivariance=True, ema_decay=0.8)
    model.compile(jit_compile=True)
    for optimizer in (model.gen_optimizer, model.disc_optimizer, model.head_optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    record = RecordWeights("generator")
    steps = 12
    data = tf.data.Dataset.from_tensor_slices(tiny_batch(batch=2 * steps)).batch(2)
    history = model.fit(data, epochs=1, verbose=0, callbacks=[record])
    assert sorted(history.history) == sorted(LOSS_NAMES)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    # The first steps overflow at the initial 2**15 loss scale and are skipped while it
    # halves (the generator's 4 here). A head computing in float16 overflowed at any scale
    # and was never updated: it computes in float32.
    applied = [int(optimizer.inner_optimizer.iterations) for optimizer in model.training_optimizers]
    assert min(applied) >= steps // 2, applied
    assert model.generator.get_layer("res1_conv1").compute_dtype == "float16"
    assert model.feature_head.compute_dtype == "float32"
    assert model(tiny_batch()[0]).dtype == tf.float32

    assert int(np.asarray(model.ema_updates)) == steps
    averaged = [np.asarray(w) for w in model.generator_ema.weights]
    for got, want in zip(averaged, hand_average(record.seen, 0.8)):
        np.testing.assert_allclose(got, want, atol=2e-6)
    assert max(float(np.abs(a - b).max()) for a, b in zip(averaged, record.seen[-1])) > 1e-5

    assert sorted(model.evaluate(data, verbose=0, return_dict=True)) == sorted(LOSS_NAMES)


@pytest.mark.slow  # traces a training step
def test_the_flip_mirrors_the_input_for_every_network():
    """FastCUT's flipped step, as `train_step` runs it (in a graph, the flip a tensor): the NCE
    term compares the input with its translation's features mirrored back. The keys,
    constants, are built off the tape: a `tf.cond` built on a persistent tape is wrapped in a
    function built with its gradient, which once doubled the tracing."""
    model = tiny_cut("fastcut")
    model.compile()
    real_a, real_b = tiny_batch()
    mirrored_a = real_a[:, :, ::-1]
    fake_b = model.generator(mirrored_a)
    ids = [tf.range(10)] * len(TINY_NCE_LAYERS)
    expected = model.nce_loss(real_a, fake_b, flip=True, patch_ids=ids)
    unflipped = model.nce_loss(real_a, fake_b, flip=False, patch_ids=ids)
    step = tf.function(model.update)
    losses = step(real_a, real_b, flip=tf.constant(True), patch_ids={"a2b": ids})
    graph = step.get_concrete_function(real_a, real_b, flip=tf.constant(True), patch_ids={"a2b": ids}).graph
    # The flip's conditional sits in the step's own graph, not in a wrapping function
    # (TensorFlow names that one `cflow_gradient_wrapper`).
    assert {op.type for op in graph.get_operations()} & {"If", "StatelessIf"}
    functions = [f.signature.name for f in graph.as_graph_def().library.function]
    assert functions and not [name for name in functions if "gradient_wrapper" in name], functions
    # The generator's loss is taken before its own update, with the discriminator just updated.
    np.testing.assert_allclose(losses["nce_a2b"].numpy(), expected.numpy(), rtol=1e-5)
    assert np.abs(expected.numpy() - unflipped.numpy()).max() > 1e-4


def test_compile_refuses_a_loss_or_a_single_optimizer():
    with pytest.raises(ValueError, match="loss="):
        tiny_cut().compile(loss="mse")


def test_lambda_nce_0_trains_the_generator_on_the_gan_loss_alone_and_leaves_the_head():
    """The official skips PatchNCE and F's optimizer when lambda_NCE is 0: so does CUT."""
    model = tiny_cut("cut", lambda_nce=0)
    model.compile()
    head_before = [w.numpy() for w in model.feature_head.weights]
    generator_before = [w.numpy() for w in model.generator.weights]
    losses = model.update(*tiny_batch())
    assert sorted(losses) == ["disc_b", "gan_a2b", "gen_total"]
    np.testing.assert_array_equal(losses["gen_total"].numpy(), losses["gan_a2b"].numpy())
    assert int(model.head_optimizer.iterations) == 0 and int(model.gen_optimizer.iterations) == 1
    for before, after in zip(head_before, model.feature_head.weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert any(np.abs(b - a.numpy()).max() > 0 for b, a in zip(generator_before, model.generator.weights))


@pytest.mark.slow  # traces a training step
def test_lambda_nce_0_traces_a_step_that_logs_the_three_losses():
    model = tiny_cut("cut", lambda_nce=0)
    model.compile()
    logs = tf.function(model.train_step)(tiny_batch(seed=1))
    assert sorted(logs) == ["disc_b", "gan_a2b", "gen_total"]
