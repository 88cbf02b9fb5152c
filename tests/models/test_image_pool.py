import numpy as np
import pytest
import tensorflow as tf

from tf_cyclegan import ImagePool


def _image(value):
    return np.full((1, 2, 2, 3), value, "float32")


def _check_query(pool_before, new_value, out_value, pool_after):
    """One query on a full pool: either the new image passes through and the pool is unchanged,
    or a stored image comes out and the new image takes exactly its slot."""
    if out_value == new_value and np.array_equal(pool_before, pool_after):
        return "new"
    changed = np.flatnonzero(pool_before != pool_after)
    assert len(changed) == 1, (pool_before, pool_after)
    assert out_value == pool_before[changed[0]] and pool_after[changed[0]] == new_value
    return "old"


@pytest.mark.parametrize("compiled", [False, True])
def test_reference_semantics(compiled):
    pool = ImagePool(pool_size=4, seed=3)
    query = tf.function(pool, jit_compile=True) if compiled else pool
    stored = lambda: pool.images.numpy()[:, 0, 0, 0].copy()  # noqa: E731

    # Filling: each image is stored in order and returned unchanged.
    for value in range(4):
        out = query(_image(value)).numpy()
        assert out[0, 0, 0, 0] == value
    np.testing.assert_array_equal(stored(), [0, 1, 2, 3])

    outcomes = []
    for value in range(10, 210):
        before = stored()
        out = query(_image(value)).numpy()[0, 0, 0, 0]
        outcomes.append(_check_query(before, value, out, stored()))
    # Old images come back with probability 0.5: 200 draws stay within 0.35..0.65 except
    # with probability below 1e-4.
    assert 0.35 < outcomes.count("old") / len(outcomes) < 0.65


def test_batch_is_queried_image_by_image():
    pool = ImagePool(pool_size=3, seed=0)
    batch = np.concatenate([_image(v) for v in (1, 2)])
    out = pool(batch).numpy()
    np.testing.assert_array_equal(out[:, 0, 0, 0], [1, 2])
    assert int(pool.count.numpy()) == 2
    before = pool.images.numpy()[:, 0, 0, 0].copy()
    out = pool(np.concatenate([_image(v) for v in (3, 4)])).numpy()
    assert out[0, 0, 0, 0] == 3  # fills the last slot
    full = np.array([1, 2, 3], "float32")
    np.testing.assert_array_equal(before[:2], full[:2])
    # The second image meets a full pool: _check_query fails unless it passed through with the pool
    # unchanged, or came back as one stored image whose slot it took.
    _check_query(full, 4, out[1, 0, 0, 0], pool.images.numpy()[:, 0, 0, 0])


def test_zero_pool_passes_images_through():
    pool = ImagePool(pool_size=0)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(pool(x).numpy(), x)


def test_pool_needs_a_fixed_image_size_and_valid_size():
    with pytest.raises(ValueError, match="fixed image size"):
        ImagePool(2).build((None, None, None, 3))
    with pytest.raises(ValueError, match="pool_size=-1"):
        ImagePool(-1)


def test_config_round_trip():
    pool = ImagePool(pool_size=7, seed=5)
    clone = ImagePool.from_config(pool.get_config())
    assert (clone.pool_size, clone.seed) == (7, 5)
