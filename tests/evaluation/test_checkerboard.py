import numpy as np
import pytest

from tf_cyclegan.evaluation.checkerboard import checkerboard_score, grid_frequencies, periodic_component, spike_ratios


def _smooth(size=64):
    y, x = np.mgrid[:size, :size] / size
    return np.stack([np.sin(6 * x) * np.cos(5 * y), np.sin(4 * (x + y)), 0.5 * np.cos(7 * x)], axis=-1)


def _checkerboard(size=64, amplitude=0.05):
    y, x = np.mgrid[:size, :size]
    return amplitude * ((-1.0) ** (x + y))[..., None] * np.ones(3)


def test_a_grid_over_a_smooth_image_scores_far_above_the_image_alone():
    assert checkerboard_score(_smooth()) < 1.0
    assert checkerboard_score(_smooth() + _checkerboard()) > 100.0


def test_a_period_4_stripe_pattern_is_caught_too():
    x = np.mgrid[:64, :64][1]
    stripes = 0.02 * np.cos(np.pi / 2 * x)[..., None] * np.ones(3)
    assert checkerboard_score(_smooth() + stripes) > 5.0


@pytest.mark.parametrize("slope", [0.0, 0.4, 1.0])
def test_a_sharp_edge_scores_low(slope):
    # A hard step, vertical, slanted or diagonal: its spectrum is a line, not a spike.
    y, x = np.mgrid[:64, :64]
    edge = (x + slope * y > 40).astype(float)[..., None] * np.array([0.9, 0.5, 0.1])
    assert checkerboard_score(edge) < 1.5


def test_a_ramp_is_not_mistaken_for_a_grid_by_the_jump_at_its_borders():
    y, x = np.mgrid[:64, :64] / 64
    ramp = np.stack([x, y, x + y], axis=-1)  # large jumps between opposite borders
    assert checkerboard_score(ramp) < 1.0
    np.testing.assert_allclose(np.diff(periodic_component(ramp[..., 0]), axis=1).std(), 0, atol=0.02)


def test_a_flat_image_scores_zero_and_batches_average():
    assert checkerboard_score(np.full((32, 32, 3), 0.3)) == 0.0
    board = _smooth() + _checkerboard()
    batch = np.stack([board, _smooth()])
    assert checkerboard_score(batch) == pytest.approx((checkerboard_score(board) + checkerboard_score(_smooth())) / 2)


def test_frequencies_are_the_fifteen_of_period_2_and_4():
    frequencies = grid_frequencies(64, 96)
    assert len(frequencies) == 15 and (0, 0) not in frequencies
    assert {y for y, _ in frequencies} == {0, 16, 32, 48} and {x for _, x in frequencies} == {0, 24, 48, 72}
    assert spike_ratios(_smooth()).shape == (15,)


@pytest.mark.parametrize("shape", [(30, 32, 3), (32, 4, 3), (2, 2)])
def test_sizes_that_are_not_multiples_of_4_are_refused(shape):
    with pytest.raises(ValueError, match="multiples of 4"):
        spike_ratios(np.zeros(shape))
