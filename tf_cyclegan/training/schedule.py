"""The paper's learning-rate schedule: constant, then linear decay to zero."""

import keras
import numpy as np


def linear_decay_factor(epoch, epochs, epochs_decay):
    """Multiplier of the base rate at 0-based `epoch`, as the reference's `lambda_rule`.

    Constant for `epochs` epochs, then falling linearly over `epochs_decay` epochs:
    the reference divides by `epochs_decay + 1`, so the last epoch still trains.
    """
    return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)


class LinearDecay(keras.callbacks.Callback):
    """Sets both CycleGAN optimizers' learning rate at the start of each epoch.

    Driven by the epoch number, not an optimizer's iteration count (which stops
    advancing on steps the loss scaler skips), so it also lands right on resume.

    Args:
        learning_rate: float, default 2e-4. Base rate of both optimizers.
        epochs: int, default 100. Epochs at the base rate.
        epochs_decay: int, default 100. Epochs of linear decay after them.

    Raises:
        ValueError: a negative (or non-integer) count, or a negative rate, naming it.

    Example:
    >>> LinearDecay(2e-4, epochs=100, epochs_decay=100)  # doctest: +ELLIPSIS
    <...LinearDecay object at ...>
    """

    def __init__(self, learning_rate=2e-4, epochs=100, epochs_decay=100):
        super().__init__()
        # Checked here: a negative count makes the factor exceed 1 or divide by zero epochs later.
        for name, value in (("epochs", epochs), ("epochs_decay", epochs_decay)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"LinearDecay's {name} must be an int, 0 or more. Received: {name}={value!r}")
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.number)) \
                or not np.isfinite(learning_rate) or learning_rate < 0:
            raise ValueError(f"LinearDecay's learning_rate must be a finite number, 0 or more. "
                             f"Received: learning_rate={learning_rate!r}")
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.epochs_decay = epochs_decay

    def rate(self, epoch):
        return self.learning_rate * linear_decay_factor(epoch, self.epochs, self.epochs_decay)

    def on_epoch_begin(self, epoch, logs=None):
        # Every optimizer the model trains with (a CUT model's feature head's too).
        optimizers = getattr(self.model, "training_optimizers", None) or (self.model.gen_optimizer,
                                                                         self.model.disc_optimizer)
        for optimizer in optimizers:
            optimizer.learning_rate = self.rate(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(np.asarray(self.model.gen_optimizer.learning_rate))
