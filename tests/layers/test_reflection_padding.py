import keras
import numpy as np
import pytest

from tf_cyclegan.layers.reflection_padding import ReflectionPadding2D


def test_reflection_padding_matches_numpy_reflect():
    x = np.arange(2 * 5 * 6 * 3, dtype="float32").reshape(2, 5, 6, 3)
    out = keras.ops.convert_to_numpy(ReflectionPadding2D(2)(x))
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect"))


def test_reflection_padding_shape_and_config_round_trip():
    layer = ReflectionPadding2D(3, name="pad")
    assert layer.compute_output_shape((None, None, 10, 3)) == (None, None, 16, 3)
    clone = ReflectionPadding2D.from_config(layer.get_config())
    assert clone.padding == 3 and clone.name == "pad"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, ReflectionPadding2D) and restored.padding == 3


@pytest.mark.parametrize("bad", [-1, 1.5, "1"])
def test_reflection_padding_rejects_bad_padding(bad):
    with pytest.raises(ValueError, match="padding"):
        ReflectionPadding2D(bad)


def test_reflection_padding_passes_the_layer_harness(tmp_path):
    import tensorflow as tf
    from conftest import run_layer_test

    run_layer_test(ReflectionPadding2D, {"padding": 2}, (2, 5, 6, 3), (2, 9, 10, 3), tmp_path,
                   reference=lambda x: tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT"))
