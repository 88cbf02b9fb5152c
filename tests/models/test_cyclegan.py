import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, TINY_SIZE, RecordWeights, conv_path, hand_average, random_pairs, tiny_cyclegan

from tf_cyclegan import CycleGAN
from tf_cyclegan.layers.legacy import load_weights
from tf_cyclegan.models.losses import discriminator_loss, gan_loss, l1_loss
from tf_cyclegan.speed import apply_cpu_speedups, cpu_speedups_applied

NETWORKS = ("gen_a2b", "gen_b2a", "disc_a", "disc_b")


def _weights(model):
    return {name: [v.numpy().copy() for v in getattr(model, name).trainable_variables] for name in NETWORKS}


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])  # mixed_float16: under XLA, below
def test_one_fit_epoch_changes_all_four_networks(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = tiny_cyclegan()
    model.compile()
    before = _weights(model)
    history = model.fit(random_pairs(count=2), epochs=1, verbose=0)
    after = _weights(model)
    for name in NETWORKS:
        changed = [not np.array_equal(b, a) for b, a in zip(before[name], after[name])]
        assert all(changed), f"{name}: {changed.count(False)} variables did not change under {policy}"
    for key, values in history.history.items():
        assert np.isfinite(values[-1]), (key, values)
    assert set(history.history) >= {"gen_total", "gan_a2b", "cycle_a", "identity_b", "disc_a", "disc_b"}


@pytest.mark.slow
def test_loss_scaling_acts_on_both_optimizers_under_mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_cyclegan(pool_size=0)
    model.compile()
    scales = [float(opt.dynamic_scale.numpy()) for opt in (model.gen_optimizer, model.disc_optimizer)]
    assert scales == [2.0**15, 2.0**15]
    # An image with an overflowing value makes every gradient non-finite: a loss-scaled
    # optimizer skips the update and halves its scale instead of writing NaNs.
    real_a = np.full((1, TINY_SIZE, TINY_SIZE, 3), 6e4, "float32")
    real_b = np.zeros((1, TINY_SIZE, TINY_SIZE, 3), "float32")
    before = _weights(model)
    model.train_on_batch(real_a, real_b)
    after = _weights(model)
    for name in NETWORKS:
        assert all(np.array_equal(b, a) for b, a in zip(before[name], after[name])), name
    for opt in (model.gen_optimizer, model.disc_optimizer):
        assert float(opt.dynamic_scale.numpy()) == 2.0**14
        # The skipped step did not advance the inner optimizer's count.
        assert int(opt.inner_optimizer.iterations.numpy()) == 0


def _first_step_and_trained(jit_compile=False, initial=None, steps=1, cpu_speedups="off", ema_decay=None,
                            eager=False):
    """A tiny CycleGAN's losses on its first batch (one fit epoch of one batch), then the model
    after `steps - 1` more batches; `initial` weights, or a fresh model's. The generators'
    weights after every step are in `model.recorded.seen`. `eager`: the first step only, run
    eagerly (`train_step`, nothing traced), the reference the compiled step matches."""
    keras.utils.set_random_seed(3)
    model = tiny_cyclegan(ema_decay=ema_decay)
    model.compile(jit_compile=jit_compile)
    apply_cpu_speedups(model, cpu_speedups)
    model.build((1, TINY_SIZE, TINY_SIZE, 3))
    if initial is not None:
        model.set_weights(initial)
    start = [np.asarray(w).copy() for w in model.weights]
    if eager:
        logs = model.train_step(next(iter(random_pairs(count=1, seed=9))))
        return {key: float(value) for key, value in logs.items()}, start, model
    model.weights_at_start = _weights(model)
    model.recorded = RecordWeights("gen_a2b", "gen_b2a")
    first = model.fit(random_pairs(count=1, seed=9), epochs=1, verbose=0, callbacks=[model.recorded]).history
    if steps > 1:
        model.fit(random_pairs(count=steps - 1, seed=10), epochs=1, verbose=0, callbacks=[model.recorded])
    return {key: float(values[0]) for key, values in first.items()}, start, model


@pytest.mark.slow
@pytest.mark.onednn
@pytest.mark.parametrize("policy, branches", [
    ("float32", "cpu"),  # the CPU speed-ups (lean custom gradients, fused Adam) inside XLA
    ("mixed_float16", "gpu"),  # what a GPU runs by default: jit_compile="auto" and precision "auto"
])
def test_the_whole_step_compiles_under_xla_and_matches_the_eager_step(policy, branches, request):
    if branches == "gpu":
        request.getfixturevalue("gpu_branches")
    else:
        conv_path(request.getfixturevalue("monkeypatch"), lean=True)
    keras.mixed_precision.set_global_policy(policy)
    # Under mixed_float16 the first steps overflow at the initial 2**15 loss scale and are
    # skipped while the scale halves, so more steps are needed for every network to change.
    steps = 12 if policy == "mixed_float16" else 2
    # On the GPU's path, with averaged generators as well (the config's default).
    ema_decay = 0.8 if policy == "mixed_float16" else None
    eager_losses, start, _ = _first_step_and_trained(eager=True, ema_decay=ema_decay)
    xla_losses, _, xla = _first_step_and_trained(jit_compile=True, initial=start, steps=steps, cpu_speedups="auto",
                                                 ema_decay=ema_decay)
    assert all(cpu_speedups_applied(xla).values()) is (branches == "cpu")
    assert xla.jit_compile and xla.train_function is not None
    worst = max(abs(xla_losses[key] - eager_losses[key]) for key in eager_losses)
    print(f"{policy}/{branches}: largest first-step loss difference, XLA against the eager step: {worst:.2e}")
    assert set(xla_losses) == set(eager_losses) and worst <= 1e-3, (xla_losses, eager_losses)
    assert all(np.isfinite(value) for value in xla_losses.values())
    after = _weights(xla)
    for name in NETWORKS:
        changed = [not np.array_equal(b, a) for b, a in zip(xla.weights_at_start[name], after[name])]
        assert all(changed), f"{name}: {changed.count(False)} variables did not change under XLA"
    if policy == "mixed_float16":
        for optimizer in (xla.gen_optimizer, xla.disc_optimizer):
            assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            assert 0 < int(optimizer.inner_optimizer.iterations.numpy()) <= steps
        # The averaged generators under XLA and mixed_float16 (they stay float32 variables and
        # compute as the generators do): the hand-computed average of every step's weights,
        # skipped steps included, and not the last iterate.
        assert int(np.asarray(xla.ema_updates)) == steps
        assert {w.dtype for w in xla.gen_a2b_ema.weights} == {"float32"}
        assert xla.gen_a2b_ema.dtype_policy.name == policy
        averaged = [np.asarray(w) for w in xla.gen_a2b_ema.weights + xla.gen_b2a_ema.weights]
        for got, want in zip(averaged, hand_average(xla.recorded.seen, 0.8), strict=True):
            np.testing.assert_allclose(got, want, atol=2e-6)
        assert max(float(np.abs(a - b).max()) for a, b in zip(averaged, xla.recorded.seen[-1])) > 1e-4


@pytest.mark.parametrize("stacked", [False, True])
def test_generator_loss_is_the_paper_combination(stacked):
    model = tiny_cyclegan(lambda_cycle=10.0, lambda_identity=0.5)
    model.stack_network_calls = stacked
    real_a, real_b = (np.random.default_rng(i).uniform(-1, 1, (2, 32, 32, 3)).astype("float32") for i in (0, 1))
    images = model.forward(real_a, real_b)
    losses = model.generator_losses(real_a, real_b, images)

    fake_b_direct = model.gen_a2b(real_a)
    fake_a_direct = model.gen_b2a(real_b)
    direct = {
        "fake_b": fake_b_direct, "fake_a": fake_a_direct,
        "cycled_a": model.gen_b2a(fake_b_direct), "cycled_b": model.gen_a2b(fake_a_direct),
        "same_a": model.gen_b2a(real_a), "same_b": model.gen_a2b(real_b),
    }
    assert images._fields == tuple(direct)
    for name, value in direct.items():
        np.testing.assert_allclose(getattr(images, name), value, atol=1e-5, err_msg=name)
    expected = {
        "gan_a2b": gan_loss(model.disc_b(fake_b_direct), True),
        "gan_b2a": gan_loss(model.disc_a(fake_a_direct), True),
        "cycle_a": l1_loss(real_a, model.gen_b2a(fake_b_direct)),
        "cycle_b": l1_loss(real_b, model.gen_a2b(fake_a_direct)),
        "identity_a": l1_loss(real_a, model.gen_b2a(real_a)),
        "identity_b": l1_loss(real_b, model.gen_a2b(real_b)),
    }
    for name, value in expected.items():
        np.testing.assert_allclose(losses[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    total = (expected["gan_a2b"] + expected["gan_b2a"] + 10 * (expected["cycle_a"] + expected["cycle_b"])
             + 5 * (expected["identity_a"] + expected["identity_b"]))
    np.testing.assert_allclose(losses["gen_total"], total, rtol=1e-5)


def test_zero_identity_weight_skips_the_identity_passes():
    model = tiny_cyclegan(lambda_identity=0.0)
    images = {"gen_a2b": 0, "gen_b2a": 0}  # images each generator translated
    for name in images:
        network = getattr(model, name)
        original = network.call

        def counting(inputs, *args, _name=name, _original=original, **kwargs):
            images[_name] += inputs.shape[0]
            return _original(inputs, *args, **kwargs)

        network.call = counting
    x = np.zeros((1, 32, 32, 3), "float32")
    translations = model.forward(x, x)
    losses = model.generator_losses(x, x, translations)
    assert translations.same_a is None and translations.same_b is None
    assert "identity_a" not in losses and "identity_b" not in losses
    # Translation and cycle only: A->B on real A and fake A, B->A on real B and fake B.
    assert images == {"gen_a2b": 2, "gen_b2a": 2}


def test_stacked_calls_match_separate_calls_and_fall_back_for_other_sizes():
    model = tiny_cyclegan()
    x, y = (np.random.default_rng(i).uniform(-1, 1, (2, 32, 32, 3)).astype("float32") for i in (4, 5))
    stacked = model._call_stacked(model.disc_a, False, x, y)
    for out, image in zip(stacked, (x, y)):
        np.testing.assert_allclose(out, model.disc_a(image), rtol=1e-5, atol=1e-6)
    small = x[:, :16, :16]
    different = model._call_stacked(model.gen_a2b, False, x, small)
    assert different[0].shape == (2, 32, 32, 3) and different[1].shape == (2, 16, 16, 3)


class _NormalizedBlock(keras.layers.Layer):
    """A custom layer with batch statistics inside it (not a model: no `.layers`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(3, 3, padding="same")
        self.norm = keras.layers.BatchNormalization()

    def call(self, x, training=False):
        return self.norm(self.conv(x), training=training)


def test_networks_with_batch_statistics_anywhere_are_called_one_by_one():
    inputs = keras.Input((None, None, 3))
    gen_with_bn = keras.Model(inputs, _NormalizedBlock()(inputs))
    plain = tiny_cyclegan()
    assert plain._per_image
    model = CycleGAN(gen_with_bn, plain.gen_b2a, plain.disc_a, plain.disc_b, pool_size=0)
    assert not model._per_image
    calls = []
    call = gen_with_bn.call
    gen_with_bn.call = lambda x, *args, **kwargs: calls.append(x.shape[0]) or call(x, *args, **kwargs)
    x = np.zeros((1, 16, 16, 3), "float32")
    model._call_stacked(gen_with_bn, True, x, x)
    assert calls == [1, 1]


@pytest.mark.slow
def test_train_on_batch_trains_once_and_returns_the_losses():
    model = tiny_cyclegan()
    model.compile(jit_compile=False)
    real_a, real_b = next(iter(random_pairs(count=1)))
    logs = model.train_on_batch(real_a.numpy(), real_b.numpy(), return_dict=True)
    assert {"gen_total", "disc_a", "disc_b"} <= set(logs) and np.isfinite(logs["gen_total"])
    assert int(model.gen_optimizer.iterations.numpy()) == 1
    assert int(model.disc_optimizer.iterations.numpy()) == 1


def test_discriminator_test_loss_uses_current_fakes():
    model = tiny_cyclegan()
    model.compile()
    real_a, real_b = (np.random.default_rng(i).uniform(-1, 1, (1, 32, 32, 3)).astype("float32") for i in (2, 3))
    logs = model.test_on_batch(real_a, real_b, return_dict=True)
    fake_a = model.gen_b2a(real_b)
    expected = discriminator_loss(model.disc_a(real_a), model.disc_a(fake_a)).numpy()[0]
    np.testing.assert_allclose(logs["disc_a"], expected, rtol=1e-5)


def test_optimizers_are_built_on_their_own_networks_only():
    model = tiny_cyclegan()
    model.compile()
    assert model.optimizer is model.gen_optimizer
    gen_vars = {id(v) for v in model.generator_variables}
    disc_vars = {id(v) for v in model.discriminator_variables}
    assert {id(v) for v in model.gen_optimizer._trainable_variables} == gen_vars
    assert {id(v) for v in model.disc_optimizer._trainable_variables} == disc_vars
    default = model.disc_optimizer
    assert isinstance(default, keras.optimizers.Adam)
    assert np.isclose(float(default.learning_rate), 2e-4) and default.beta_1 == 0.5


def test_compile_rejects_a_single_optimizer_or_a_loss():
    model = tiny_cyclegan()
    with pytest.raises(ValueError, match="optimizer="):
        model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="loss="):
        model.compile(loss="mse")


def test_bad_arguments_are_named():
    plain = tiny_cyclegan()
    with pytest.raises(ValueError, match="disc_a=None"):
        CycleGAN(plain.gen_a2b, plain.gen_b2a, None, plain.disc_b)
    with pytest.raises(ValueError, match="gen_a2b='resnet'"):
        CycleGAN("resnet", plain.gen_b2a, plain.disc_a, plain.disc_b)
    with pytest.raises(ValueError, match="gan_mode"):
        tiny_cyclegan(gan_mode="wgan")
    with pytest.raises(ValueError, match="lambda_cycle=-1"):
        tiny_cyclegan(lambda_cycle=-1)


def test_the_keyword_names_of_version_0_2_0_warn_and_build_the_same_networks():
    from tf_cyclegan.models.resnet_generator import generator_alignment

    keras.utils.set_random_seed(0)
    new = tiny_cyclegan(alignment="keras_same", disc_num_layers=2)
    keras.utils.set_random_seed(0)
    with pytest.warns(UserWarning) as caught:
        old = tiny_cyclegan(generator_alignment="keras_same", disc_layers=2)
    assert sorted(str(w.message) for w in caught) == ["build_cyclegan: disc_layers= is now disc_num_layers=",
                                                      "build_cyclegan: generator_alignment= is now alignment="]
    assert generator_alignment(old.gen_a2b) == "keras_same"
    for name in NETWORKS:
        assert getattr(old, name).get_config() == getattr(new, name).get_config()
        for ours, theirs in zip(getattr(old, name).weights, getattr(new, name).weights):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(TypeError, match="got both disc_layers= and disc_num_layers=, its new name"):
        tiny_cyclegan(disc_layers=2, disc_num_layers=4)


@pytest.mark.slow
def test_keras_file_round_trip_keeps_outputs_optimizer_state_pools_and_averages(tmp_path):
    model = tiny_cyclegan(gan_mode="vanilla", lambda_identity=0.0, ema_decay=0.9)
    model.compile(jit_compile=False)
    for batch in random_pairs():  # four steps, eagerly (no graph to trace; the loaded model's fit traces one)
        model.train_step(batch)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")

    assert isinstance(loaded, CycleGAN)
    assert (loaded.gan_mode, loaded.lambda_identity, loaded.pool_size, loaded.ema_decay) == ("vanilla", 0.0, 3, 0.9)
    x = np.random.default_rng(5).uniform(-1, 1, (1, 40, 24, 3)).astype("float32")
    for name in NETWORKS:
        np.testing.assert_array_equal(getattr(loaded, name)(x).numpy(), getattr(model, name)(x).numpy())
    for attr in ("gen_optimizer", "disc_optimizer"):
        saved, restored = getattr(model, attr), getattr(loaded, attr)
        assert len(saved.variables) == len(restored.variables)
        moments = [v for v in saved.variables if "momentum" in v.path]
        assert moments and any(np.abs(v.numpy()).max() > 0 for v in moments), attr
        for a, b in zip(saved.variables, restored.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{attr}: {a.path}")
    np.testing.assert_array_equal(loaded.pool_a.images.numpy(), model.pool_a.images.numpy())
    assert int(loaded.pool_b.count.numpy()) == int(model.pool_b.count.numpy()) == 3
    # The averaged generators, their update count, and what translates by default.
    assert int(np.asarray(loaded.ema_updates)) == 4
    for got, want in zip(loaded.gen_a2b_ema.weights + loaded.gen_b2a_ema.weights,
                         model.gen_a2b_ema.weights + model.gen_b2a_ema.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=want.path)
    np.testing.assert_array_equal(loaded.get_generator("a2b")(x), model.gen_a2b_ema(x))

    # The restored model trains on from where it stopped.
    loaded.fit(random_pairs(seed=1), epochs=1, verbose=0)
    assert int(loaded.disc_optimizer.iterations.numpy()) == 8 and int(np.asarray(loaded.ema_updates)) == 8


def test_call_translates_a_to_b_at_any_size():
    model = tiny_cyclegan()
    x = tf.zeros((1, 24, 36, 3))
    np.testing.assert_array_equal(model(x).numpy(), model.gen_a2b(x).numpy())


def test_stacked_generator_pass_gives_the_same_gradients_as_separate_calls():
    keras.utils.set_random_seed(0)
    model = tiny_cyclegan(pool_size=0)
    model.build((2, TINY_SIZE, TINY_SIZE, 3))
    rng = np.random.default_rng(0)
    real_a, real_b = (tf.constant(rng.uniform(-1, 1, (2, TINY_SIZE, TINY_SIZE, 3)).astype("float32")) for _ in "ab")

    def gradients(stacked):
        model.stack_network_calls = stacked
        with tf.GradientTape() as tape:
            losses = model.generator_losses(real_a, real_b, model.forward(real_a, real_b, training=True), training=True)
            loss = tf.reduce_mean(losses["gen_total"])
        return tape.gradient(loss, model.generator_variables)

    stacked, separate = gradients(True), gradients(False)
    # Kernels only: a bias right before instance norm has a true gradient of zero, so its
    # computed gradient is rounding noise either way.
    kernels = [i for i, v in enumerate(model.generator_variables) if "kernel" in v.path]
    assert len(kernels) > 5
    for i in kernels:
        scale = float(np.abs(separate[i]).max())
        assert scale > 0
        np.testing.assert_allclose(stacked[i], separate[i], rtol=0, atol=1e-4 * scale)


@pytest.mark.onednn
def test_a_model_saved_by_version_0_1_0_loads_and_translates_the_same():
    # Saved by the code of version 0.1.0 (tests/fixtures/README.md): what users have on disk.
    model = keras.saving.load_model(os.path.join(FIXTURES, "cyclegan_0.1.0.keras"))
    expected = np.load(os.path.join(FIXTURES, "cyclegan_0.1.0_outputs.npz"))
    assert isinstance(model, CycleGAN)
    for name in ("gen_a2b", "gen_b2a", "disc_a", "disc_b"):
        got = keras.ops.convert_to_numpy(getattr(model, name)(expected["image"]))
        np.testing.assert_allclose(got, expected[name], atol=1e-5, err_msg=name)
    assert int(keras.ops.convert_to_numpy(model.gen_optimizer.iterations)) == 2


@pytest.mark.onednn
def test_a_model_saved_by_version_0_2_0_loads_and_translates_the_same():
    # Saved by the code of version 0.2.0 (tests/fixtures/README.md): LeanConv2D and FusedAdam.
    model = keras.saving.load_model(os.path.join(FIXTURES, "cyclegan_0.2.0.keras"))
    expected = np.load(os.path.join(FIXTURES, "cyclegan_0.2.0_outputs.npz"))
    assert type(model.gen_a2b.get_layer("stem_conv")).__name__ == "LeanConv2D"
    for name in NETWORKS:
        got = keras.ops.convert_to_numpy(getattr(model, name)(expected["image"]))
        np.testing.assert_allclose(got, expected[name], atol=1e-5, err_msg=name)
    assert int(keras.ops.convert_to_numpy(model.gen_optimizer.iterations)) == 2


@pytest.mark.onednn
def test_a_backup_of_version_0_2_0_resumes_into_todays_plain_networks():
    # A run's backup is `save_weights` of the whole compiled model: 0.2.0 named the
    # convolutions' groups lean_conv2d_N, today's plain networks conv2d_N.
    model = tiny_cyclegan()
    model.compile()
    model.build((1, TINY_SIZE, TINY_SIZE, 3))
    load_weights(model, os.path.join(FIXTURES, "cyclegan_0.2.0_state.weights.h5"))
    expected = np.load(os.path.join(FIXTURES, "cyclegan_0.2.0_outputs.npz"))
    for name in NETWORKS:
        got = keras.ops.convert_to_numpy(getattr(model, name)(expected["image"]))
        np.testing.assert_allclose(got, expected[name], atol=1e-5, err_msg=name)
    for optimizer in (model.gen_optimizer, model.disc_optimizer):
        assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 2
        assert any(np.abs(np.asarray(v)).max() > 0 for v in optimizer.variables if "momentum" in v.path)


def test_a_new_model_saves_only_keras_layers_and_our_own(tmp_path):
    model = tiny_cyclegan()
    model.compile()
    apply_cpu_speedups(model, "on")  # attached to the objects, not saved with them
    model.build((1, TINY_SIZE, TINY_SIZE, 3))
    model.save(tmp_path / "model.keras")
    import json
    import zipfile

    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))
    names = set()

    def walk(node):
        if isinstance(node, dict):
            if "class_name" in node and "module" in node:
                names.add(f"{node['module']}.{node['class_name']}")
                if isinstance(node.get("registered_name"), str):
                    names.add(node["registered_name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    ours = {name for name in names if name.startswith("tf_cyclegan>")}
    assert ours == {"tf_cyclegan>CycleGAN", "tf_cyclegan>InstanceNormalization",
                    "tf_cyclegan>ReflectionPadding2D"}, names
    assert "keras.layers.Conv2D" in names and "keras.optimizers.Adam" in names, names
    assert not any("Lean" in name or "Fused" in name for name in names), names


def test_the_discriminators_share_one_step_function():
    model = tiny_cyclegan()
    model.compile()
    real, fake = (np.random.default_rng(i).uniform(-1, 1, (1, 32, 32, 3)).astype("float32") for i in (6, 7))
    per_example, grads = model.discriminator_step(model.disc_b, real, fake)
    expected = discriminator_loss(model.disc_b(real, training=True), model.disc_b(fake, training=True))
    np.testing.assert_allclose(per_example, expected, rtol=1e-5)
    assert len(grads) == len(model.disc_b.trainable_variables) and all(g is not None for g in grads)
