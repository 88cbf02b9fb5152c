"""Averaged generator weights: an exponential moving average of a network's weights over training.

GAN generators oscillate around good weights; the average of their recent weights is usually
nearer the truth than the last iterate (Yazıcı et al., "The Unusual Effectiveness of Averaging
in GAN Training", ICLR 2019; standard since StyleGAN). The average is kept in a copy of the
network that no optimizer and no loss sees, so training computes exactly what it computes
without it; only what is translated afterwards changes.

The average is bias-corrected (as Adam's moments are), so it starts at the first weights it
is given rather than at the random initialisation, and after `t` updates it is exactly the
weighted mean of the weights seen, the `i`-th weighted by `decay ** (t - i)`:

    average <- average + (1 - decay) / (1 - decay ** t) * (weights - average)

which at `t = 1` is a copy. The arithmetic is that of the weights' own dtype (float32 under
mixed precision, where variables stay float32).
"""

import keras
import tensorflow as tf


def averaged_copy(network, name):
    """A copy of `network` (same architecture, same weights now) that holds its average:
    not trainable, so no optimizer and no `trainable_variables` list finds it."""
    copy = keras.models.clone_model(network)
    copy.name = name
    copy.set_weights(network.get_weights())
    copy.trainable = False
    return copy


def update_average(average, network, decay, count):
    """One step of the bias-corrected moving average of `network`'s weights into `average`'s.

    Args:
        average: the averaged copy (`averaged_copy`), updated in place.
        network: the network being trained, whose weights are read.
        decay: float in (0, 1).
        count: scalar tensor, the number of updates including this one (1 for the first).
    """
    count = tf.cast(count, "float32")
    rate = (1.0 - decay) / (1.0 - tf.pow(tf.constant(decay, "float32"), count))
    for averaged, current in zip(average.weights, network.weights):
        value = tf.convert_to_tensor(averaged.value)
        step = tf.cast(rate, value.dtype) * (tf.convert_to_tensor(current.value) - value)
        averaged.assign(value + step)
