import keras
import numpy as np

from tf_cyclegan.models.initializers import paper_initializer


def test_weights_are_drawn_from_a_normal_of_mean_0_and_std_0_02():
    initializer = paper_initializer()
    assert isinstance(initializer, keras.initializers.RandomNormal)
    assert (initializer.mean, initializer.stddev) == (0.0, 0.02)
    weights = keras.ops.convert_to_numpy(initializer((256, 256)))
    assert abs(weights.std() - 0.02) < 5e-4 and abs(weights.mean()) < 5e-4


def test_each_call_gives_a_new_initializer_so_layers_do_not_share_draws():
    first, second = paper_initializer(), paper_initializer()
    assert first is not second
    a = keras.layers.Dense(8, kernel_initializer=first)
    b = keras.layers.Dense(8, kernel_initializer=second)
    a.build((None, 8))
    b.build((None, 8))
    assert not np.array_equal(keras.ops.convert_to_numpy(a.kernel), keras.ops.convert_to_numpy(b.kernel))
