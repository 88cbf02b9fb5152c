import keras
import pytest
from conftest import tiny_cyclegan

import tf_cyclegan as tc
from tf_cyclegan.benchmarking.flops import forward_macs, matmul_rate, training_step_flops


def _resnet9_macs_by_hand(size, transposed_at_output):
    """The paper's ResNet-9 generator (ngf 64), layer by layer: output pixels x kernel x in x out."""
    quarter, half = size // 4, size // 2
    up_pixels = (half * half, size * size) if transposed_at_output else (quarter * quarter, half * half)
    return (
        size * size * 7 * 7 * 3 * 64  # c7s1-64
        + half * half * 3 * 3 * 64 * 128  # d128
        + quarter * quarter * 3 * 3 * 128 * 256  # d256
        + 18 * quarter * quarter * 3 * 3 * 256 * 256  # R256 x 9, two convolutions each
        + up_pixels[0] * 3 * 3 * 256 * 128  # u128 (transposed)
        + up_pixels[1] * 3 * 3 * 128 * 64  # u64 (transposed)
        + size * size * 7 * 7 * 64 * 3  # c7s1-3
    )


def test_the_resnet9_generator_counts_the_figures_quoted_for_it():
    generator = tc.build_resnet_generator()
    by_input = forward_macs(generator, (1, 256, 256, 3))
    by_output = forward_macs(generator, (1, 256, 256, 3), transposed_at_output=True)
    assert sum(by_input) == _resnet9_macs_by_hand(256, False)
    assert round(sum(by_input) / 1e9, 1) == 49.6
    assert sum(by_output) == _resnet9_macs_by_hand(256, True)
    assert round(sum(by_output) / 1e9, 1) == 56.8
    assert len(by_input) == 24 and by_input[0] == 256 * 256 * 7 * 7 * 3 * 64  # the first layer first


def test_the_patchgan_and_the_batch_scale_as_the_shapes_say():
    disc = tc.build_patchgan_discriminator()
    macs = forward_macs(disc, (2, 256, 256, 3))
    by_hand = [
        128 * 128 * 16 * 3 * 64, 64 * 64 * 16 * 64 * 128, 32 * 32 * 16 * 128 * 256,
        31 * 31 * 16 * 256 * 512, 30 * 30 * 16 * 512 * 1,
    ]
    assert macs == [2 * m for m in by_hand]


def test_grouped_depthwise_and_dense_layers_are_counted():
    network = keras.Sequential([
        keras.Input((10, 10, 4)),
        keras.layers.Conv2D(4, 3, groups=2),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
        keras.layers.Flatten(),
        keras.layers.Dense(5),
    ])
    assert forward_macs(network, (2, 10, 10, 4)) == [
        2 * 8 * 8 * 9 * 2 * 4,  # two input channels per group
        2 * 6 * 6 * 9 * 4 * 2,
        2 * (6 * 6 * 8) * 5,
    ]


def test_an_unknown_size_is_refused_by_name():
    with pytest.raises(ValueError, match="input_shape"):
        forward_macs(tc.build_patchgan_discriminator(filters=4), (1, None, 32, 3))


@pytest.fixture(scope="module")
def step_flops():
    """`training_step_flops` of a 32-px tiny CycleGAN by `lambda_identity`, each traced once
    (a count depends on the architecture alone, and tracing the update takes seconds)."""
    counts = {}

    def count(lambda_identity):
        if lambda_identity not in counts:
            counts[lambda_identity] = training_step_flops(tiny_cyclegan(lambda_identity=lambda_identity),
                                                          (1, 32, 32, 3))
        return counts[lambda_identity]

    return count


@pytest.mark.parametrize("lambda_identity", [0.5, 0.0])
def test_a_step_counts_every_pass_of_the_update(lambda_identity, step_flops):
    model = tiny_cyclegan(lambda_identity=lambda_identity)
    shape = (1, 32, 32, 3)
    passes_on_real = 2 if lambda_identity else 1
    macs = 0
    for generator in (model.gen_a2b, model.gen_b2a):
        layers = forward_macs(generator, shape)
        # On the other's fake: forward, input and weight gradients of every layer.
        macs += 3 * sum(layers)
        # On real images: no input gradient for the first layer.
        macs += passes_on_real * (3 * sum(layers) - layers[0])
    for disc in (model.disc_a, model.disc_b):
        layers = forward_macs(disc, shape)
        macs += 2 * sum(layers) + 2 * (3 * sum(layers) - layers[0])
    assert step_flops(lambda_identity) == 2 * macs


def test_the_identity_passes_are_what_a_zero_identity_weight_saves(step_flops):
    shape = (1, 32, 32, 3)
    with_identity = step_flops(0.5)
    without = step_flops(0.0)
    generator = forward_macs(tiny_cyclegan().gen_a2b, shape)
    assert with_identity - without == 2 * 2 * (3 * sum(generator) - generator[0])


@pytest.mark.parametrize("library", ["tensorflow", "numpy"])
def test_the_matmul_rate_is_its_products_over_the_best_time(library):
    rate = matmul_rate(size=64, repeats=3, library=library)
    assert rate["flop"] == 2 * 64**3
    assert len(rate["seconds"]) == 3 and min(rate["seconds"]) > 0
    assert rate["flop_per_s"] == pytest.approx(rate["flop"] / min(rate["seconds"]))
    assert rate["dtype"] == "float32" and rate["library"] == library


def test_the_matmul_rate_refuses_what_it_cannot_measure():
    with pytest.raises(ValueError, match="library"):
        matmul_rate(size=8, library="torch")
    with pytest.raises(ValueError, match="size"):
        matmul_rate(size=0)
    with pytest.raises(ValueError, match="not_a_dtype"):
        matmul_rate(size=8, dtype="not_a_dtype", library="numpy")


def test_the_private_tensorflow_name_the_count_relies_on_is_still_there():
    """`_called_function` looks inside nested function calls with `tf.Graph._get_function`: if
    TensorFlow renames it, this fails (the count would otherwise refuse every nested call)."""
    import tensorflow as tf

    from tf_cyclegan.benchmarking.flops import _called_function

    assert callable(getattr(tf.Graph, "_get_function", None))

    @tf.function
    def inner(x):
        return x * 2

    graph = tf.function(lambda x: inner(x)).get_concrete_function(tf.TensorSpec((2,), tf.float32)).graph
    call = next(op for op in graph.get_operations() if op.type in ("PartitionedCall", "StatefulPartitionedCall"))
    assert _called_function(graph, call.get_attr("f").name).graph is not None
