"""Adam with PyTorch's epsilon: the optimizer of the official CUT, step for step.

Keras' Adam adds epsilon to the root of the raw second moment and folds both bias
corrections into the learning rate; PyTorch's `torch.optim.Adam` adds it to the root of
the bias-corrected moment. Written out, step t moves a weight by

    Keras:   lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)
    PyTorch: lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + epsilon)

so Keras' epsilon is in effect PyTorch's divided by sqrt(1 - beta_2^t): 32 times larger at
the first step with beta_2 = 0.999, and still 4.5 times at step 20. On the first step (where
Adam moves every weight by about lr * sign(gradient)) a gradient of 1e-6 then moves its
weight by 0.76 lr in Keras and 0.99 lr in PyTorch; measured on the official CUT step, that
alone put the discriminator 9e-5 away from the official and, through it, the generator's
adversarial gradient 3e-3 (relative) away.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class PyTorchAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose `epsilon` is added where PyTorch adds it: to the root of
    the bias-corrected second moment. Same arguments, config and slot variables as Adam;
    `amsgrad` is not supported.

    Example:
    >>> optimizer = PyTorchAdam(learning_rate=2e-4, beta_1=0.5, epsilon=1e-8)
    >>> optimizer.get_config()["epsilon"]
    1e-08
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError(f"PyTorchAdam has no amsgrad. Received: amsgrad={self.amsgrad!r}")

    def update_step(self, gradient, variable, learning_rate):
        """Keras' own Adam step, with the epsilon that makes it PyTorch's at this step.

        Keras' step is lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon); with
        epsilon * sqrt(1 - b2^t) in epsilon's place it is PyTorch's, exactly in real
        arithmetic. Only the subclassing contract is used (`update_step`, `epsilon`,
        `iterations`, `beta_2`): no slot variable is read here.
        """
        torch_epsilon = self.epsilon
        step = ops.cast(self.iterations + 1, variable.dtype)
        self.epsilon = torch_epsilon * ops.sqrt(1 - ops.power(ops.cast(self.beta_2, variable.dtype), step))
        try:
            super().update_step(gradient, variable, learning_rate)
        finally:
            self.epsilon = torch_epsilon
