"""Classes that `.keras` files saved by version 0.1.0 name, kept so that those files load.

A `.keras` file names each custom object by its registered name, and its weights by the
class names of the layers (`layers/conv2d_3/vars`). Version 0.1.0 saved its convolutions as
`tf_cyclegan>Conv2D` and its discriminators' padding as `tf_cyclegan>ZeroPadding2D`. Both
names stay registered, for classes that keep those class names so that the weights are
found where the old files put them. New networks use `LeanConv2D` and
`keras.layers.ZeroPadding2D`; nothing in the package builds these.
"""

import keras

from tf_cyclegan.layers.lean_conv import LeanConv2D


@keras.saving.register_keras_serializable(package="tf_cyclegan", name="Conv2D")
class Conv2D(LeanConv2D):
    """Deprecated: `LeanConv2D` under the name version 0.1.0 saved it by (loads old files)."""


@keras.saving.register_keras_serializable(package="tf_cyclegan", name="ZeroPadding2D")
class ZeroPadding2D(keras.layers.ZeroPadding2D):
    """Deprecated: `keras.layers.ZeroPadding2D` under the name version 0.1.0 saved it by.

    Loads from old files and computes exactly Keras' padding (the hand-written gradient it
    once had is gone: it did not pay for itself, docs/performance.md).
    """
