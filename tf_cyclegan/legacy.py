"""Classes that `.keras` files saved by earlier versions name, kept so that those files load.

A `.keras` file names each custom object by its registered name. Version 0.1.0 saved its
discriminators' padding as `tf_cyclegan>ZeroPadding2D`, a zero padding with a hand-written
one-op gradient that did not pay for itself on either CPU (docs/performance.md) and is gone
from new networks, which use `keras.layers.ZeroPadding2D`. The name stays registered, for
Keras' own layer, so that the old files load and compute what they did.
"""

import keras


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class ZeroPadding2D(keras.layers.ZeroPadding2D):
    """Deprecated: `keras.layers.ZeroPadding2D` under the name version 0.1.0 saved it by.

    Loads from old files and computes exactly Keras' padding; build new networks with
    `keras.layers.ZeroPadding2D`.
    """
