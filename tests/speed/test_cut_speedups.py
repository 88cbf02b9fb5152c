"""The CPU speed-ups on CUT: every device attaches, comes off, and a training step with them
computes what the plain step computes."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_SIZE

from tf_cyclegan import runtime
from tf_cyclegan.models.cut import build_cut
from tf_cyclegan.models.pytorch_adam import PyTorchAdam
from tf_cyclegan.speed import apply_cpu_speedups, cpu_speedups_applied, fused_adam


def tiny_cut(mode, **kwargs):
    """tests/models/test_cut.py's tiny CUT: 4-filter networks, one residual block, 16 patches."""
    return build_cut(mode, filters=4, num_residual_blocks=1, disc_filters=4, head_units=8, num_patches=16, seed=0,
                     nce_layers=("stem_pad", "down1_conv", "down2_conv", "res1_add"), **kwargs)


def tiny_batch(batch):
    rng = np.random.default_rng(0)
    return tuple(rng.uniform(-1, 1, (batch, TINY_SIZE, TINY_SIZE, 3)).astype("float32") for _ in range(2))


@pytest.fixture
def every_device(monkeypatch):
    """No GPU and TensorFlow's own CPU kernels: the conditions under which all five attach."""
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: False)


def test_every_device_attaches_to_cut_and_comes_off(every_device):
    model = tiny_cut("cut")
    model.compile()
    plain = cpu_speedups_applied(model)
    assert not any(plain.values()), plain
    applied = apply_cpu_speedups(model, "on")
    assert all(applied.values()), applied
    assert cpu_speedups_applied(model) == applied
    assert all(fused_adam.attached(optimizer) for optimizer in model.training_optimizers)
    off = apply_cpu_speedups(model, "off")
    assert not any(off.values()) and cpu_speedups_applied(model) == plain


def _train(optimizer, start, gradients):
    variable = keras.Variable(start)
    optimizer.build([variable])

    @tf.function
    def step(gradient):
        optimizer.apply_gradients([(gradient, variable)])

    for gradient in gradients:
        step(tf.constant(gradient))
    return np.asarray(variable)


def test_the_fused_update_is_pytorch_adams():
    """The fused kernel with epsilon * sqrt(1 - beta_2^t) is PyTorchAdam's update, small
    gradients (where the two epsilons differ most) included."""
    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 4)).astype("float32")
    gradients = [rng.normal(size=(6, 4)).astype("float32") * scale for scale in (1e-6, 1.0, 1e-7, 3.0)]
    expected = _train(PyTorchAdam(0.01, beta_1=0.5, epsilon=1e-6), start, gradients)
    fused = PyTorchAdam(0.01, beta_1=0.5, epsilon=1e-6)
    assert fused_adam.attach(fused)
    actual = _train(fused, start, gradients)
    keras_adam = _train(keras.optimizers.Adam(0.01, beta_1=0.5, epsilon=1e-6), start, gradients)
    assert np.abs(expected - start).max() > 0.01 and np.abs(keras_adam - expected).max() > 1e-3
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


def _trained(speedups):
    """A tiny CUT (same weights and seed whatever `speedups`) after `fit` on two batches, with
    both CUT's identity PatchNCE and FastCUT's random flip."""
    keras.utils.set_random_seed(0)
    model = tiny_cut("cut", flip_equivariance=True)
    model.compile()
    apply_cpu_speedups(model, "on" if speedups else "off")
    data = tf.data.Dataset.from_tensor_slices(tiny_batch(batch=4)).batch(2)
    history = model.fit(data, epochs=1, verbose=0).history
    return model, history


@pytest.mark.slow  # trains
def test_a_step_with_the_speedups_is_the_plain_step(every_device):
    """Same losses (1e-5 relative) and weights after two steps (1e-5) for every weight but
    those of the convolutions an instance norm follows: their gradient is rounding (the norm
    removes them), so its sign, which Adam's first steps follow, is the summation order's."""
    plain, plain_history = _trained(speedups=False)
    fast, fast_history = _trained(speedups=True)
    assert all(cpu_speedups_applied(fast).values())
    assert plain_history.keys() == fast_history.keys()
    for name, values in plain_history.items():
        assert fast_history[name][-1] == pytest.approx(values[-1], rel=1e-5), name
    tapped = {"down1_conv", "down2_conv"}  # PatchNCE reads them before their norm
    for name in plain.network_names:
        for ours, theirs in zip(getattr(plain, name).weights, getattr(fast, name).weights):
            layer = ours.path.split("/")[-2]
            inert = ours.path.endswith("bias") and layer.endswith(("_conv", "_conv1", "_conv2")) and \
                layer not in tapped | {"head_conv", "logits_conv", "layer0_conv"}
            np.testing.assert_allclose(np.asarray(theirs), np.asarray(ours), rtol=0,
                                       atol=4 * 2e-4 if inert else 1e-5, err_msg=ours.path)
