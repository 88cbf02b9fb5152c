import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import subprocess_env

from tf_cyclegan import build_resnet_generator
from tf_cyclegan.layers import legacy
from tf_cyclegan.layers.legacy import ZeroPadding2D


def test_the_old_zero_padding_name_loads_as_keras_padding():
    # How version 0.1.0's files name the layer: this name must keep resolving.
    config = {"module": None, "class_name": "ZeroPadding2D", "registered_name": "tf_cyclegan>ZeroPadding2D",
              "config": {"name": "layer0_pad", "padding": [[1, 1], [1, 1]], "data_format": "channels_last"}}
    layer = keras.saving.deserialize_keras_object(config)
    assert isinstance(layer, ZeroPadding2D) and isinstance(layer, keras.layers.ZeroPadding2D)
    x = np.arange(2 * 3 * 4 * 2, dtype="float32").reshape(2, 3, 4, 2)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)]))


@pytest.mark.slow
def test_importing_the_package_registers_the_old_names():
    # In a fresh process: nothing but `import tf_cyclegan` may be needed to load old files.
    code = ("import tf_cyclegan, keras; "
            "print(keras.saving.get_registered_object('tf_cyclegan>ZeroPadding2D').__module__)")
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "tf_cyclegan.layers.legacy"


@pytest.mark.parametrize("old_conv", ["keras", "0.1.0", "0.2.0"])
def test_weight_files_of_older_versions_load(tmp_path, monkeypatch, old_conv):
    # Weight files address layers by class name: networks built on keras.layers.Conv2D (before
    # 0.1.0, and now) or on the package's old `Conv2D` (0.1.0) wrote `conv2d_N`, version 0.2.0's
    # `LeanConv2D` wrote `lean_conv2d_N`. `legacy.load_weights` reads each into today's network.
    import tf_cyclegan.models.resnet_generator as generator_module

    old_class = {"keras": keras.layers.Conv2D, "0.1.0": legacy.Conv2D, "0.2.0": legacy.LeanConv2D}[old_conv]
    monkeypatch.setattr(generator_module.keras.layers, "Conv2D", old_class)
    old = build_resnet_generator(filters=4, num_residual_blocks=1)
    monkeypatch.undo()
    assert type(old.get_layer("stem_conv")) is old_class
    old.save_weights(tmp_path / "old.weights.h5")
    before = (tmp_path / "old.weights.h5").read_bytes()
    new = build_resnet_generator(filters=4, num_residual_blocks=1)
    if old_conv == "0.2.0":
        with pytest.raises(ValueError, match="could not be loaded"):
            new.load_weights(tmp_path / "old.weights.h5")
    legacy.load_weights(new, tmp_path / "old.weights.h5")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(new(x).numpy(), old(x).numpy(), atol=1e-6)
    assert (tmp_path / "old.weights.h5").read_bytes() == before  # the user's file is not touched


def test_a_network_of_version_0_2_0_reads_todays_weight_files(tmp_path, monkeypatch):
    # A model loaded from a 0.2.0 .keras file (LeanConv2D layers) resuming from a backup
    # written by today's plain networks.
    import tf_cyclegan.models.resnet_generator as generator_module

    today = build_resnet_generator(filters=4, num_residual_blocks=1)
    today.save_weights(tmp_path / "today.weights.h5")
    monkeypatch.setattr(generator_module.keras.layers, "Conv2D", legacy.LeanConv2D)
    old = build_resnet_generator(filters=4, num_residual_blocks=1)
    monkeypatch.undo()
    legacy.load_weights(old, tmp_path / "today.weights.h5")
    x = np.random.default_rng(1).uniform(-1, 1, (1, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(old(x).numpy(), today(x).numpy(), atol=1e-6)


def test_the_old_optimizer_name_loads_as_keras_adam():
    config = {"module": None, "class_name": "FusedAdam", "registered_name": "tf_cyclegan>FusedAdam",
              "config": {"name": "adam", "learning_rate": 0.0002, "beta_1": 0.5}}
    optimizer = keras.saving.deserialize_keras_object(config)
    assert isinstance(optimizer, legacy.FusedAdam) and isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.beta_1 == 0.5 and type(optimizer).update_step is keras.optimizers.Adam.update_step
    with pytest.raises(ValueError, match="amsgrad"):
        legacy.FusedAdam(amsgrad=True)


def test_a_weight_file_of_another_network_still_fails_with_keras_error(tmp_path):
    build_resnet_generator(filters=4, num_residual_blocks=1).save_weights(tmp_path / "small.weights.h5")
    with pytest.raises(ValueError):
        legacy.load_weights(build_resnet_generator(filters=4, num_residual_blocks=2), tmp_path / "small.weights.h5")


@pytest.mark.parametrize("name", ["Conv2D", "LeanConv2D"])
def test_the_old_convolution_classes_pass_the_layer_harness_as_keras_conv2d(tmp_path, name):
    import tensorflow as tf
    from conftest import run_layer_test

    def convolution(x, kernel, bias):
        return tf.nn.conv2d(x, kernel, strides=1, padding="VALID") + bias

    run_layer_test(getattr(legacy, name), {"filters": 5, "kernel_size": 3}, (2, 7, 6, 3), (2, 5, 4, 5), tmp_path,
                   reference=convolution)


def test_the_old_zero_padding_class_passes_the_layer_harness(tmp_path):
    import tensorflow as tf
    from conftest import run_layer_test

    run_layer_test(ZeroPadding2D, {"padding": 1}, (2, 4, 5, 3), (2, 6, 7, 3), tmp_path,
                   reference=lambda x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]))
