import pytest

from tf_cyclegan.schedule import LinearDecay, linear_decay_factor


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
