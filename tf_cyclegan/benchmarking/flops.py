"""How much arithmetic a training step is, and how fast this machine can do arithmetic.

The performance target asks for the rate the training step achieves against the machine's
own matrix-multiply rate. Both halves are here: `forward_macs` counts a network's
multiply-adds from the shapes of its convolutions and matrix products, `training_step_flops`
adds up what one CycleGAN update needs from those counts, and `matmul_rate` measures how
many floating-point operations per second a matrix product reaches here (TensorFlow's own
kernel, and NumPy's BLAS).

The count is of the arithmetic the update needs, not of what one implementation happens to
run: the PyTorch reference and this project do the same update, so one count divides both
steps' images per second. Only convolutions and matrix products are counted (normalisation,
activations, padding, losses and the optimizer are memory-bound and a rounding error in
FLOPs); one multiply-add is two FLOPs.
"""

import time

import numpy as np
import tensorflow as tf

# op type -> the input holding the convolution's own input (as this layer sees it) and its filter.
_CONV_OPS = {"Conv2D": (0, 1), "Conv2DBackpropInput": (2, 1), "DepthwiseConv2dNative": (0, 1)}
_MATMUL_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def forward_macs(network, input_shape, transposed_at_output=False):
    """Multiply-adds of each convolution and matrix product in one forward pass, in order.

    The network is traced (not run) on a batch of `input_shape` (batch included), and every
    `Conv2D`, transposed convolution (`Conv2DBackpropInput`), depthwise convolution and
    matrix product in the traced graph is counted from its static shapes. A transposed
    convolution is counted at its input resolution, the convention that gives the
    ResNet-9 generator's 49.6 GMACs at 256x256; `transposed_at_output=True` counts it at
    the output resolution (stride x input: a "valid" transposed convolution's border, which
    the generator crops, is not counted), which gives the 56.8 GMACs also often quoted.

    Args:
        network: a Keras model (or any callable of one image batch) built from TensorFlow ops.
        input_shape: (batch, height, width, channels), all known.
        transposed_at_output: bool, default False. See above.

    Returns:
        list of int: the multiply-adds of each counted op, in the order the forward pass
        runs them (the first is the network's first layer).
    """
    if any(dim is None or dim < 1 for dim in input_shape):
        raise ValueError(f"input_shape must be fully known and positive. Received: input_shape={input_shape!r}")
    forward = tf.function(lambda images: network(images, training=False), autograph=False)
    graph = forward.get_concrete_function(tf.TensorSpec(input_shape, tf.float32)).graph
    macs = []
    for op in _operations(graph):
        if op.type in _CONV_OPS:
            macs.append(_conv_macs(op, transposed_at_output))
        elif op.type in _MATMUL_OPS:
            macs.append(_matmul_macs(op))
    return macs


def _operations(graph):
    """The graph's ops in order, with those of the functions it calls in place of the calls
    (Keras runs grouped convolutions on a CPU as a nested compiled function)."""
    for op in graph.get_operations():
        if op.type not in ("PartitionedCall", "StatefulPartitionedCall"):
            yield op
            continue
        called = _called_function(graph, op.get_attr("f").name)
        if called is None or getattr(called, "graph", None) is None:
            raise ValueError(
                f"Cannot count the multiply-adds inside function call {op.name!r}: its graph is not available."
            )
        yield from _operations(called.graph)


def _called_function(graph, name):
    """The function named `name` that an op of `graph` calls, or None. TensorFlow has no public
    way to look up a function in a graph's library (`tf.Graph` keeps it behind the private
    `_get_function`); without that method the call is reported as not countable, never
    silently counted as zero (tests/benchmarking/test_flops.py pins the name)."""
    get_function = getattr(graph, "_get_function", None)
    return get_function(name) if get_function is not None else None


def _static_shape(tensor, op):
    shape = tensor.shape
    if shape.rank is None or None in shape.as_list():
        raise ValueError(
            f"Cannot count the multiply-adds of {op.type} op {op.name!r}: shape {shape} is not fully known."
        )
    return shape.as_list()


def _channels_last(op, shape):
    """(batch, height, width, channels) of an image-shaped tensor of a convolution op."""
    data_format = op.get_attr("data_format")
    if isinstance(data_format, bytes):
        data_format = data_format.decode()
    if data_format == "NCHW":
        batch, channels, height, width = shape
        return batch, height, width, channels
    return tuple(shape)


def _conv_macs(op, transposed_at_output):
    image_input, filter_input = _CONV_OPS[op.type]
    kernel_height, kernel_width, filter_in, filter_out = _static_shape(op.inputs[filter_input], op)
    batch, out_height, out_width, _ = _channels_last(op, _static_shape(op.outputs[0], op))
    if op.type != "Conv2DBackpropInput":
        # Conv2D's filter_in is the input channels per group, so grouped convolutions count
        # right too; a depthwise filter is (h, w, channels, multiplier): the same product.
        return batch * out_height * out_width * kernel_height * kernel_width * filter_in * filter_out
    # Transposed: every input pixel scatters the kernel; the filter is (h, w, out, in).
    _, in_height, in_width, _ = _channels_last(op, _static_shape(op.inputs[image_input], op))
    if transposed_at_output:
        _, stride_height, stride_width, _ = _channels_last(op, list(op.get_attr("strides")))
        height, width = in_height * stride_height, in_width * stride_width
    else:
        height, width = in_height, in_width
    return batch * height * width * kernel_height * kernel_width * filter_in * filter_out


def _matmul_macs(op):
    a, b = _static_shape(op.inputs[0], op), _static_shape(op.inputs[1], op)
    adjoint = ("transpose_a", "transpose_b") if op.type == "MatMul" else ("adj_x", "adj_y")
    rows = a[-1] if op.get_attr(adjoint[0]) else a[-2]
    inner = a[-2] if op.get_attr(adjoint[0]) else a[-1]
    cols = b[-2] if op.get_attr(adjoint[1]) else b[-1]
    out_shape = _static_shape(op.outputs[0], op)
    batches = 1
    for dim in out_shape[:-2]:
        batches *= dim
    return batches * rows * inner * cols


def training_step_flops(model, input_shape):
    """FLOPs of one CycleGAN update on a batch of `input_shape` images from each domain.

    What the update needs, pass by pass (forward, input gradient, weight gradient, each as
    many multiply-adds as the forward pass of that layer):
    - each generator on its real images, on the other's fakes (cycle) and, when the
      identity loss has a weight, on real images of its own target domain: forward, weight
      gradients, and input gradients of every layer but the first unless the input is a
      fake (whose gradient flows on into the other generator);
    - each discriminator on the fakes for the generators' adversarial loss: forward and
      input gradients only (its weights are not updated by that loss);
    - each discriminator on real images and on fakes from the pool for its own update:
      forward, weight gradients, input gradients of every layer but the first.

    Args:
        model: a `tf_cyclegan.CycleGAN` (its `lambda_identity` decides the identity passes).
        input_shape: (batch, height, width, channels) of one domain's batch.

    Returns:
        int: floating-point operations (2 per multiply-add).
    """
    passes_on_real = 2 if model.lambda_identity > 0 else 1  # the translation, and the identity
    macs = 0
    for generator in (model.gen_a2b, model.gen_b2a):
        layers = forward_macs(generator, input_shape)
        full = 3 * sum(layers)  # forward, input and weight gradients
        macs += full + passes_on_real * (full - layers[0])  # the cycle pass runs on a fake
    for discriminator in (model.disc_a, model.disc_b):
        # The fakes it sees have the real images' shape: the generators keep the size.
        layers = forward_macs(discriminator, input_shape)
        macs += 2 * sum(layers)  # adversarial loss: forward and input gradients
        macs += 2 * (3 * sum(layers) - layers[0])  # its own update, on real and pooled fake
    return 2 * macs


def matmul_rate(size=4096, dtype="float32", repeats=5, library="tensorflow"):
    """This machine's matrix-multiply rate, in FLOP/s: the yardstick for a training step's rate.

    Multiplies two random `size` x `size` matrices `repeats` times, after one untimed
    product (which pays for kernel selection and first-touch memory), and returns the best
    rate: the question is what the hardware reaches, and on a shared machine the best of a
    few runs is the closest reading of that.

    The two libraries answer different questions. "tensorflow" is the rate TensorFlow's
    own CPU kernels reach (Eigen, the library that also runs this project's
    convolutions). "numpy" is the rate of NumPy's BLAS (OpenBLAS in the PyPI wheels),
    closer to what the processor itself can do, and what the PyTorch reference's kernels
    can approach (for float32 and float64: NumPy multiplies other dtypes, bfloat16 included,
    without BLAS).

    Args:
        size: int, default 4096. The matrices' side.
        dtype: "float32" (default) or "bfloat16" (TensorFlow only), or any dtype the library multiplies.
        repeats: int, default 5.
        library: "tensorflow" (default) or "numpy".

    Returns:
        dict: flop_per_s (best), flop (per product), seconds (every timed product),
        library, dtype, size.
    """
    if size < 1 or repeats < 1:
        raise ValueError(f"size and repeats must be at least 1. Received: size={size!r}, repeats={repeats!r}")
    if library == "tensorflow":
        dtype = tf.as_dtype(dtype).name
        a = tf.cast(tf.random.stateless_uniform((size, size), seed=(0, 1), minval=-1, maxval=1), dtype)
        b = tf.cast(tf.random.stateless_uniform((size, size), seed=(0, 2), minval=-1, maxval=1), dtype)
        matmul = tf.function(tf.linalg.matmul, autograph=False)

        def product():
            matmul(a, b).numpy()  # .numpy() waits for the product

    elif library == "numpy":
        try:
            dtype = np.dtype(dtype)
        except TypeError as error:
            raise ValueError(f"NumPy cannot multiply dtype {dtype!r}: {error}") from None
        generator = np.random.default_rng(0)
        a, b = (generator.uniform(-1, 1, (size, size)).astype(dtype) for _ in range(2))
        dtype = dtype.name

        def product():
            np.matmul(a, b)

    else:
        raise ValueError(f"library must be 'tensorflow' or 'numpy'. Received: library={library!r}")
    product()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        product()
        seconds.append(time.perf_counter() - start)
    flop = 2 * size**3
    return {"flop_per_s": flop / min(seconds), "flop": flop, "seconds": seconds,
            "library": library, "dtype": dtype, "size": size}
