"""Averaged generator weights: an exponential moving average of a network's weights over training.

GAN generators oscillate around good weights; the average of their recent weights is usually
nearer the truth than the last iterate (Yazıcı et al., "The Unusual Effectiveness of Averaging
in GAN Training", ICLR 2019; standard since StyleGAN). The average is kept in a copy of the
network that no optimizer and no loss sees, so training computes exactly what it computes
without it; only what is translated afterwards changes.

The average is bias-corrected (as Adam's moments are), so it starts at the first weights it
is given rather than at the random initialisation, and after `t` updates it is exactly the
weighted mean of the weights seen, the `i`-th weighted by `decay ** (t - i)`:

    rate = (1 - decay) / (1 - decay ** t)
    average <- (1 - rate) * average + rate * weights

which at `t = 1` is an exact copy. The arithmetic is that of the weights' own dtype (float32 under
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
    decay = tf.constant(decay, "float32")
    rate = (1.0 - decay) / (1.0 - tf.pow(decay, tf.cast(count, "float32")))  # exactly 1 at the first update
    for averaged, current in zip(average.weights, network.weights):
        value = tf.convert_to_tensor(averaged.value)
        rate_here = tf.cast(rate, value.dtype)
        averaged.assign((1 - rate_here) * value + rate_here * tf.convert_to_tensor(current.value))
