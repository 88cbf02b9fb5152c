import pytest

from tf_cyclegan.training.callbacks.periodic import is_due


@pytest.mark.parametrize("every_n, due", [
    (1, [1, 2, 3, 4, 5, 6, 7]),
    (3, [3, 6]),
    (7, [7]),
    (8, []),
])
def test_due_on_every_multiple_counted_from_one(every_n, due):
    assert [count for count in range(1, 8) if is_due(count, every_n)] == due


@pytest.mark.parametrize("never", [0, None])
def test_zero_or_none_is_never_due(never):
    assert not any(is_due(count, never) for count in range(0, 10))


def test_the_answer_is_a_bool():
    assert is_due(4, 2) is True and is_due(3, 2) is False and is_due(3, 0) is False
