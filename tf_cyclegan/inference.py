"""Translating whole images of any size with a generator."""

import keras
import tensorflow as tf


def pad_to_multiple(image, multiple=4):
    """Reflection-pads a (N, H, W, C) batch at the bottom/right to multiples of `multiple`."""
    height, width = tf.shape(image)[1], tf.shape(image)[2]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    return tf.pad(image, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT"), height, width


def translate(generator, images):
    """Runs `generator` on a [-1, 1] batch of any H and W; output has the input's size.

    The ResNet generator needs H and W divisible by 4: the batch is reflection-padded
    and the output cropped back. Images smaller than 2 pixels in a dimension cannot be
    reflection-padded and are rejected.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank == 3:
        return translate(generator, images[None])[0]
    padded, height, width = pad_to_multiple(images)
    output = generator(padded, training=False)
    return keras.ops.convert_to_tensor(output)[:, :height, :width, :]
