"""The function `fit` calls for each training step, traced as one graph.

Keras 3 (TensorFlow backend) makes its training function out of two nested `tf.function`s:
`one_step_on_data` (the step, compiled with `jit_compile`) called inside
`multi_step_on_iterator` (which reads the batch from the dataset's iterator and loops
over `steps_per_execution` steps). Tracing the step into a function of its own means its
graph is finished, converted and captured a second time by the outer graph, and the
runtime inlines one function into the other before the first step can run. For the
ResNet-9 CycleGAN at 128x128 that took about 1 s of the main thread before the first
step (the README's training-speed section).

Keras nests the two for XLA (which can compile the step but not the iterator) and for
`steps_per_execution` (a loop over the step). `single_graph_train_function` traces the
step straight into the graph that reads the batch, where neither applies and no
`tf.distribute` strategy is involved; elsewhere Keras' own function is used.
"""

import itertools

import keras
import tensorflow as tf


def single_graph_train_function(model):
    """Keras' training function for `model` (`model.train_function`), with the step traced
    into the same graph as the read of its batch.

    Returns None, for Keras' own function, when the model runs eagerly, compiles with XLA
    (`jit_compile`), runs several steps per call (`steps_per_execution`) or trains under a
    `tf.distribute` strategy. The function takes what Keras' does: a dataset iterator
    (`fit`), or any iterable of batches, of which it trains on the first (`train_on_batch`).
    """
    if (model.run_eagerly or model.jit_compile or model.steps_per_execution != 1 or tf.distribute.has_strategy()
            or model.distribute_strategy is not tf.distribute.get_strategy()):
        return None

    def one_step(data):
        # As Keras: a dataset's optional elements (tf.experimental.Optional) arrive as None.
        data = keras.tree.map_structure(lambda x: None if isinstance(x, tf.experimental.Optional) else x, data)
        return model.distribute_strategy.run(model.train_step, args=(data,))

    def one_step_on_iterator(iterator):
        return one_step(iterator.get_next())  # at the end of the data: OutOfRangeError, as Keras'

    step_on_iterator = tf.function(one_step_on_iterator, reduce_retracing=True, autograph=False)
    step_on_batch = tf.function(one_step, reduce_retracing=True, autograph=False)

    def train_function(iterator):
        if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
            return step_on_iterator(iterator)
        outputs = None
        for data in itertools.islice(iterator, 1):
            outputs = step_on_batch(data)
        return outputs

    return train_function
