"""The paper's weight initialisation, shared by the generator and the discriminator."""

import keras


def paper_initializer():
    """Weights drawn from N(0, 0.02), the paper's initialisation (biases start at zero)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def xavier_initializer(gain=0.02):
    """Xavier (Glorot) normal weights scaled by `gain`: std = gain * sqrt(2 / (fan_in + fan_out)).

    CUT's initialisation (its `init_type xavier`, `init_gain 0.02`): PyTorch's
    `xavier_normal_(weight, gain)`, whose fans count the kernel's taps as Keras' do.
    """
    return keras.initializers.VarianceScaling(scale=gain**2, mode="fan_avg", distribution="untruncated_normal")
