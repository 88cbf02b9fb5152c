import keras
import numpy as np

from tf_cyclegan.legacy import ZeroPadding2D


def test_the_old_zero_padding_name_loads_as_keras_padding():
    # How version 0.1.0's files name the layer: this name must keep resolving.
    config = {"module": None, "class_name": "ZeroPadding2D", "registered_name": "tf_cyclegan>ZeroPadding2D",
              "config": {"name": "layer0_pad", "padding": [[1, 1], [1, 1]], "data_format": "channels_last"}}
    layer = keras.saving.deserialize_keras_object(config)
    assert isinstance(layer, ZeroPadding2D) and isinstance(layer, keras.layers.ZeroPadding2D)
    x = np.arange(2 * 3 * 4 * 2, dtype="float32").reshape(2, 3, 4, 2)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)]))
