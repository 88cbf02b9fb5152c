import keras
import numpy as np
import pytest

from tf_cyclegan.layers.antialiased_sampling import BlurPool2D, BlurUpSampling2D


def _blur_pool_numpy(x, taps):
    """Reflection padding, the normalised binomial filter on each channel, every second pixel."""
    size = len(taps)
    before, after = (size - 1) // 2, size // 2
    padded = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), mode="reflect")
    taps = np.asarray(taps, "float64") / np.sum(taps)
    height, width = x.shape[1:3]
    return sum(taps[i] * taps[j] * padded[:, i:i + height:2, j:j + width:2, :]
               for i in range(size) for j in range(size))


@pytest.mark.parametrize("filter_size, taps", [(3, [1, 2, 1]), (4, [1, 3, 3, 1])])
@pytest.mark.parametrize("height, width", [(10, 8), (7, 9)])
def test_blur_pool_is_the_binomial_blur_sampled_at_stride_2(filter_size, taps, height, width):
    x = np.random.default_rng(0).normal(size=(2, height, width, 5)).astype("float32")
    layer = BlurPool2D(filter_size)
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == layer.compute_output_shape(x.shape) == (2, (height + 1) // 2, (width + 1) // 2, 5)
    np.testing.assert_allclose(out, _blur_pool_numpy(x, taps), atol=1e-5)
    assert not layer.weights  # a fixed filter, nothing to train or save


def test_blur_pool_keeps_a_flat_image_flat_and_removes_the_finest_grid():
    flat = np.full((1, 8, 8, 2), 0.3, "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(BlurPool2D()(flat)), flat[:, ::2, ::2], atol=1e-6)
    # A period-2 checkerboard is what a plain stride-2 sampling would keep as a constant
    # (aliased); [1, 2, 1] has a zero at that frequency.
    y, x = np.mgrid[:8, :8]
    grid = ((-1.0) ** (x + y))[None, :, :, None].astype("float32")
    assert np.abs(grid[:, ::2, ::2]).min() == 1
    assert np.abs(keras.ops.convert_to_numpy(BlurPool2D()(grid))[:, 1:-1, 1:-1]).max() < 1e-6


def test_blur_pool_computes_in_the_layer_dtype_and_round_trips_its_config():
    layer = BlurPool2D(4, dtype="mixed_bfloat16", name="blur")
    out = layer(np.ones((1, 4, 4, 3), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, BlurPool2D) and restored.filter_size == 4 and restored.name == "blur"


@pytest.mark.parametrize("bad", [1, 6, 3.0, "3"])
def test_blur_pool_rejects_a_filter_size_it_has_no_filter_for(bad):
    with pytest.raises(ValueError, match="filter_size"):
        BlurPool2D(bad)


def _cut_upsample_numpy(x):
    """CUT's `Upsample` written out: ReplicationPad2d(1), conv_transpose2d at stride 2 with
    [1, 3, 3, 1] / 8 * 2 per axis and padding 2, then [1:-1] on each axis."""
    def along(a, axis):
        a = np.moveaxis(a, axis, 0)
        n = len(a)
        padded = np.concatenate([a[:1], a, a[-1:]])
        full = np.zeros((2 * (n + 1) + 4, *a.shape[1:]))
        for i in range(n + 2):
            for k, tap in enumerate(np.array([1, 3, 3, 1]) / 4):
                full[2 * i + k] += tap * padded[i]
        return np.moveaxis(full[2:-2][1:-1], 0, axis)

    return along(along(x, 1), 2)


@pytest.mark.parametrize("height, width", [(5, 7), (1, 4), (8, 8)])
def test_blur_upsampling_is_cuts_upsample_and_a_bilinear_resize(height, width):
    import tensorflow as tf

    x = np.random.default_rng(1).normal(size=(2, height, width, 3)).astype("float32")
    layer = BlurUpSampling2D()
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == layer.compute_output_shape(x.shape) == (2, 2 * height, 2 * width, 3)
    np.testing.assert_allclose(out, _cut_upsample_numpy(x), atol=1e-5)
    np.testing.assert_allclose(out, tf.image.resize(x, (2 * height, 2 * width), "bilinear").numpy(), atol=1e-5)
    assert not layer.weights


def test_blur_upsampling_traces_with_unknown_sizes_in_the_layer_dtype_and_under_xla():
    import tensorflow as tf

    layer = BlurUpSampling2D(dtype="mixed_bfloat16", name="up")
    traced = tf.function(layer, autograph=False, jit_compile=True,
                         input_signature=[tf.TensorSpec([None, None, None, 4], tf.float32)])
    x = np.random.default_rng(2).normal(size=(1, 3, 6, 4)).astype("float32")
    out = traced(x)
    assert out.dtype == tf.bfloat16 and out.shape == (1, 6, 12, 4)
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), _cut_upsample_numpy(x), atol=0.05)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, BlurUpSampling2D) and restored.name == "up"


def _official(name):
    from conftest import FIXTURES

    return np.load(f"{FIXTURES}/cut/antialias.npz")[name]


@pytest.mark.parametrize("size", ["even", "odd"])
def test_blur_pool_is_the_official_cut_downsample(size):
    """Against `Downsample(channels)` of the official CUT code (tests/fixtures/cut/make_cut_fixtures.py)."""
    out = keras.ops.convert_to_numpy(BlurPool2D()(_official(f"down_{size}_input")))
    np.testing.assert_allclose(out, _official(f"down_{size}_output"), atol=1e-6)


def test_blur_upsampling_is_the_official_cut_upsample():
    out = keras.ops.convert_to_numpy(BlurUpSampling2D()(_official("up_input")))
    np.testing.assert_allclose(out, _official("up_output"), atol=1e-6)


def test_blur_pool_passes_the_layer_harness(tmp_path):
    import tensorflow as tf
    from conftest import run_layer_test

    def reference(x):
        taps = tf.constant([1.0, 2.0, 1.0]) / 4
        kernel = tf.tile((taps[:, None] * taps[None, :])[:, :, None, None], (1, 1, 3, 1))
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
        return tf.nn.depthwise_conv2d(padded, kernel, strides=(1, 2, 2, 1), padding="VALID")

    run_layer_test(BlurPool2D, {"filter_size": 3}, (2, 6, 7, 3), (2, 3, 4, 3), tmp_path, reference=reference)


def test_blur_upsampling_passes_the_layer_harness(tmp_path):
    import tensorflow as tf
    from conftest import run_layer_test

    run_layer_test(BlurUpSampling2D, {}, (2, 3, 5, 2), (2, 6, 10, 2), tmp_path,
                   reference=lambda x: tf.image.resize(x, (6, 10), "bilinear"))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_blur_upsampling_gradient_has_the_input_dtype_under_xla(dtype):
    """Its input's gradient adds to the gradients of the input's other uses (a generator's
    tapped features): under XLA a float32 one among them is an error."""
    import tensorflow as tf

    layer = BlurUpSampling2D(dtype=f"mixed_{dtype}")

    @tf.function(jit_compile=True)
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x), tf.float32)) + tf.reduce_sum(tf.cast(x * x, tf.float32))
        return tape.gradient(loss, x)

    x = np.random.default_rng(3).normal(size=(2, 3, 4, 2)).astype("float32")
    got = gradient(tf.constant(x, dtype=dtype))
    assert got.dtype == dtype
    # Each input pixel feeds four output pixels with weights summing to 4: d/dx = 4 + 2x.
    np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), 4 + 2 * x, atol=0.1)
