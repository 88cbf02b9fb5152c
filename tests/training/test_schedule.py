import keras
import numpy as np
import pytest
from conftest import random_pairs, tiny_cyclegan

from tf_cyclegan.training.schedule import LinearDecay, linear_decay_factor


def _reference_lambda_rule(epoch, n_epochs, n_epochs_decay, epoch_count=1):
    # The reference implementation's scheduler, written out.
    return 1.0 - max(0, epoch + epoch_count - n_epochs) / float(n_epochs_decay + 1)


@pytest.mark.parametrize("epoch", [0, 50, 98, 99, 100, 150, 199])
def test_matches_the_reference_rule(epoch):
    assert linear_decay_factor(epoch, 100, 100) == pytest.approx(_reference_lambda_rule(epoch, 100, 100))


def test_constant_then_linear_to_near_zero():
    rates = [LinearDecay(2e-4, 100, 100).rate(e) for e in range(200)]
    assert rates[:100] == [2e-4] * 100
    assert all(a > b for a, b in zip(rates[99:], rates[100:]))
    assert rates[-1] == pytest.approx(2e-4 / 101)


@pytest.mark.slow
def test_under_mixed_float16_both_learning_rates_move_through_the_loss_scale_wrappers():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_cyclegan()
    model.compile()
    seen = []

    class Probe(keras.callbacks.Callback):  # after LinearDecay: the rates the epoch trains with
        def on_epoch_begin(self, epoch, logs=None):
            seen.append([float(np.asarray(optimizer.inner_optimizer.learning_rate))
                         for optimizer in (self.model.gen_optimizer, self.model.disc_optimizer)])

    history = model.fit(random_pairs(count=1), epochs=3, verbose=0,
                        callbacks=[LinearDecay(1e-3, epochs=1, epochs_decay=2), Probe()])
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in (model.gen_optimizer, model.disc_optimizer))
    np.testing.assert_allclose(seen, [[1e-3, 1e-3], [1e-3 * 2 / 3] * 2, [1e-3 / 3] * 2], rtol=1e-6)
    assert history.history["learning_rate"] == pytest.approx([1e-3, 1e-3 * 2 / 3, 1e-3 / 3])


@pytest.mark.parametrize("kwargs, shown", [
    ({"epochs": -1}, "epochs=-1"),
    ({"epochs_decay": -2}, "epochs_decay=-2"),
    ({"epochs": 1.5}, "epochs=1.5"),
    ({"learning_rate": -1e-4}, "learning_rate=-0.0001"),
    ({"learning_rate": float("nan")}, "learning_rate=nan"),
])
def test_bad_arguments_are_refused_at_construction_with_the_value(kwargs, shown):
    with pytest.raises(ValueError, match=f"Received: {shown}$"):
        LinearDecay(**kwargs)
    assert LinearDecay(0.0, epochs=0, epochs_decay=0).rate(0) == 0.0  # zeros are allowed
