"""The one switch, `apply_cpu_speedups`: where it is on, what it attaches, and that it comes off."""

import ast
import os

import pytest
from conftest import tiny_cyclegan

import tf_cyclegan
from tf_cyclegan import runtime
from tf_cyclegan.speed import CPU_SPEEDUPS, apply_cpu_speedups, cpu_speedups_applied, resolve_cpu_speedups


@pytest.mark.parametrize("mode, gpu, expected", [
    ("auto", False, True), ("auto", True, False), ("on", True, True), ("off", False, False),
])
def test_auto_is_on_without_a_gpu(monkeypatch, mode, gpu, expected):
    monkeypatch.setattr(runtime, "has_gpu", lambda: gpu)
    assert resolve_cpu_speedups(mode) is expected


def test_a_bad_setting_and_an_uncompiled_model_are_named():
    with pytest.raises(ValueError, match="cpu_speedups='fast'"):
        resolve_cpu_speedups("fast")
    with pytest.raises(ValueError, match="compiled"):
        apply_cpu_speedups(tiny_cyclegan(), "on")
    assert CPU_SPEEDUPS == ("auto", "on", "off")


def test_on_attaches_every_device_and_off_puts_the_plain_path_back(monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: False)  # the lean gradient's condition
    model = tiny_cyclegan()
    model.compile()
    plain = cpu_speedups_applied(model)
    assert not any(plain.values()), plain
    applied = apply_cpu_speedups(model, "on")
    assert all(applied.values()), applied
    assert cpu_speedups_applied(model) == applied
    assert model.train_function is None  # traced again with what is attached
    assert apply_cpu_speedups(model, "on") == applied  # idempotent
    off = apply_cpu_speedups(model, "off")
    assert not any(off.values()) and cpu_speedups_applied(model) == plain


def test_under_onednn_the_convolutions_keep_keras_gradients(monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: True)
    model = tiny_cyclegan()
    model.compile()
    applied = apply_cpu_speedups(model, "auto")
    assert applied["lean_conv"] is False and applied["fused_adam"] and applied["stacked_calls"]


def test_nothing_below_training_imports_the_speed_package():
    # layers/ and models/ stay plain Keras: the switch attaches from above.
    package = os.path.dirname(tf_cyclegan.__file__)
    offenders = []
    for below in ("layers", "models"):
        for name in os.listdir(os.path.join(package, below)):
            if not name.endswith(".py"):
                continue
            path = os.path.join(package, below, name)
            with open(path) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                    [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
                offenders += [f"{below}/{name}: {m}" for m in modules
                              if m.startswith(("tf_cyclegan.speed", "tf_cyclegan.training"))]
    assert offenders == []


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_the_speedups_train_under_mixed_precision(monkeypatch, policy):
    import keras
    import numpy as np
    from conftest import random_pairs

    monkeypatch.setattr(runtime, "onednn_enabled", lambda: False)  # every device, lean gradients included
    keras.mixed_precision.set_global_policy(policy)
    model = tiny_cyclegan()
    model.compile()
    assert all(apply_cpu_speedups(model, "on").values())
    before = [np.asarray(v).copy() for v in model.gen_a2b.trainable_variables]
    history = model.fit(random_pairs(count=3), epochs=1, verbose=0).history
    assert all(np.isfinite(values[-1]) for values in history.values()), history
    if policy == "mixed_float16":  # loss-scaled: the wrapped Adam got the fused update
        assert isinstance(model.gen_optimizer, keras.optimizers.LossScaleOptimizer)
    else:
        after = [np.asarray(v) for v in model.gen_a2b.trainable_variables]
        assert all(not np.array_equal(b, a) for b, a in zip(before, after))
