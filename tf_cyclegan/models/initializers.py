"""The paper's weight initialisation, shared by the generator and the discriminator."""

import keras


def paper_initializer():
    """Weights drawn from N(0, 0.02), the paper's initialisation (biases start at zero)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)
