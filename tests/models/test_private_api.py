"""Pins the private Keras and TensorFlow names `tf_cyclegan.models` relies on.

Each sits behind one small function (`models/distribution.py`) with a public fallback, or,
for Keras' pre-`fit` build hook, is overridden by `CycleGAN`. If a TensorFlow or Keras
upgrade renames one, a test here fails, instead of the behaviour quietly changing. The
speed devices' private names are pinned beside their tests (tests/speed/), runtime.py's in
tests/test_runtime.py.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf
from conftest import tiny_cyclegan

from tf_cyclegan.models import distribution


def test_keras_still_calls_the_pre_fit_build_hook_cyclegan_overrides():
    from keras.src.backend.tensorflow import trainer

    hook = trainer.TensorFlowTrainer._maybe_symbolic_build
    assert list(inspect.signature(hook).parameters) == ["self", "iterator", "data_batch"]
    assert "self._maybe_symbolic_build(iterator=" in inspect.getsource(trainer.TensorFlowTrainer.fit)
    model = tiny_cyclegan()
    assert type(model)._maybe_symbolic_build is not hook


def test_a_distributed_variable_still_has_its_replica_accessor():
    strategy = tf.distribute.MirroredStrategy(["CPU:0"])
    with strategy.scope():
        variable = keras.Variable(np.zeros(2, "float32"), trainable=False, synchronization="on_read",
                                  aggregation="only_first_replica")
    assert isinstance(variable.value, tf.distribute.DistributedValues)
    assert callable(variable.value._get_on_device_or_primary)
    # And the public path finds this replica's copy inside a replica context.
    found = strategy.run(lambda: tf.identity(distribution.replica_local(variable).read_value()))
    np.testing.assert_array_equal(strategy.experimental_local_results(found)[0], [0, 0])


def test_multi_worker_is_told_by_public_api():
    assert not distribution.is_multi_worker(tf.distribute.get_strategy())
    logs = {"gen_total": tf.constant(1.0)}
    assert distribution.step_logs(logs, tf.distribute.get_strategy()) is logs
