import keras
import numpy as np
import pytest

from tf_cyclegan.layers import ReflectionPadding2D, instance_norm


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


def test_instance_norm_normalises_each_sample_and_channel_without_parameters():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 8, 8, 4)) * [1, 5, 10, 0.1] + [3, -2, 0, 7]).astype("float32")
    layer = instance_norm()
    out = keras.ops.convert_to_numpy(layer(x))
    assert layer.count_params() == 0
    expected = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-4)
