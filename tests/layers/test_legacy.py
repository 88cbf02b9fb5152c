import subprocess
import sys

import keras
import numpy as np
from conftest import subprocess_env

from tf_cyclegan.layers.legacy import ZeroPadding2D


def test_the_old_zero_padding_name_loads_as_keras_padding():
    # How version 0.1.0's files name the layer: this name must keep resolving.
    config = {"module": None, "class_name": "ZeroPadding2D", "registered_name": "tf_cyclegan>ZeroPadding2D",
              "config": {"name": "layer0_pad", "padding": [[1, 1], [1, 1]], "data_format": "channels_last"}}
    layer = keras.saving.deserialize_keras_object(config)
    assert isinstance(layer, ZeroPadding2D) and isinstance(layer, keras.layers.ZeroPadding2D)
    x = np.arange(2 * 3 * 4 * 2, dtype="float32").reshape(2, 3, 4, 2)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)]))


def test_importing_the_package_registers_the_old_names():
    # In a fresh process: nothing but `import tf_cyclegan` may be needed to load old files.
    code = ("import tf_cyclegan, keras; "
            "print(keras.saving.get_registered_object('tf_cyclegan>ZeroPadding2D').__module__)")
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "tf_cyclegan.layers.legacy"
