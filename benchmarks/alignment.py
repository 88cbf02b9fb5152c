"""What the reference's exact stride-2 alignment costs, and which exact form is cheapest.

    python benchmarks/alignment.py --size 128 [--rounds 5 --steps 10]

The generators' four resampling layers (two stride-2 convolutions down, two stride-2
transposed convolutions up, ResNet-9 widths) at the sizes one `--size` image meets, forward
and backward (input and kernel gradients), batch 1, float32, in each form:

- `reference`: what `build_resnet_generator(alignment="reference")` builds: a ZeroPadding2D
  of 1 before each "valid" stride-2 convolution, a Cropping2D of the first row and column
  after each "valid" transposed one. Exactly PyTorch's padding=1 (output_padding=1).
- `explicit`: the same numbers from one op each: `tf.nn.conv2d` and `tf.nn.conv2d_transpose`
  with explicit paddings (top/left 1 down; 1 cropped top/left up), no copy before or after.
- `half_pad`: down, a pad of 1 on the top and left only (the bottom row and right column of
  a padded even-sized input are never read by a 3x3 stride-2 window); up as `reference`.
  Exact for even sizes only.
- `keras_same`: Keras' "same" padding, one op each, aligned one pixel off (version 0.1.0's):
  not exact; the floor any exact form can approach.

Checks first that every exact form computes the reference's outputs and gradients. Each
round times every form, in an order that rotates, and prints per form the median over
rounds of the mean step time, and its ratio to `reference`; then the whole generator's
forward and backward at that size, for scale.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tf_cyclegan.models.resnet_generator import build_resnet_generator  # noqa: E402
from tf_cyclegan.runtime import onednn_enabled  # noqa: E402


def _layers(size, filters=64):
    """(kind, input shape, kernel shape) of the generator's resampling layers at `size`."""
    return [
        ("down", (1, size, size, filters), (3, 3, filters, 2 * filters)),
        ("down", (1, size // 2, size // 2, 2 * filters), (3, 3, 2 * filters, 4 * filters)),
        ("up", (1, size // 4, size // 4, 4 * filters), (3, 3, 2 * filters, 4 * filters)),
        ("up", (1, size // 2, size // 2, 2 * filters), (3, 3, filters, 2 * filters)),
    ]


def down(form, x, kernel):
    if form == "keras_same":
        return tf.nn.conv2d(x, kernel, 2, "SAME")
    if form == "explicit":
        return tf.nn.conv2d(x, kernel, 2, [[0, 0], [1, 1], [1, 1], [0, 0]])
    pads = [[0, 0], [1, 0], [1, 0], [0, 0]] if form == "half_pad" else [[0, 0], [1, 1], [1, 1], [0, 0]]
    return tf.nn.conv2d(tf.pad(x, pads), kernel, 2, "VALID")


def up(form, x, kernel):
    batch, height, width, _ = x.shape
    out = [batch, 2 * height, 2 * width, kernel.shape[2]]
    if form == "keras_same":
        return tf.nn.conv2d_transpose(x, kernel, out, 2, "SAME")
    if form == "explicit":
        return tf.nn.conv2d_transpose(x, kernel, out, 2, [[0, 0], [1, 0], [1, 0], [0, 0]])
    full = tf.nn.conv2d_transpose(x, kernel, [batch, 2 * height + 1, 2 * width + 1, kernel.shape[2]], 2, "VALID")
    return full[:, 1:, 1:, :]


FORMS = ("reference", "explicit", "half_pad", "keras_same")


def _step(form, inputs, kernels, layers):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        tape.watch(kernels)
        outputs = [(down if kind == "down" else up)(form, x, k) for (kind, _, _), x, k in zip(layers, inputs, kernels)]
        loss = tf.add_n([tf.reduce_sum(y * y) for y in outputs])
    return outputs, tape.gradient(loss, inputs + kernels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    layers = _layers(args.size)
    inputs = [tf.constant(rng.normal(size=shape).astype("float32")) for _, shape, _ in layers]
    kernels = [tf.constant(rng.normal(size=shape).astype("float32") * 0.05) for _, _, shape in layers]
    steps = {form: tf.function(lambda i, k, form=form: _step(form, i, k, layers)) for form in FORMS}
    expected = steps["reference"](inputs, kernels)
    for form in ("explicit", "half_pad"):
        got = steps[form](inputs, kernels)
        worst = max(float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))
                    for a, b in zip(tf.nest.flatten(expected), tf.nest.flatten(got)))
        print(f"{form}: largest difference from reference, relative to the tensor's largest value "
              f"(outputs and gradients): {worst:.1e}")
    times = {form: [] for form in FORMS}
    for round_ in range(args.rounds):
        order = FORMS[round_ % len(FORMS):] + FORMS[:round_ % len(FORMS)]
        for form in order:
            tf.nest.map_structure(lambda t: t.numpy(), steps[form](inputs, kernels))  # warm
            start = time.perf_counter()
            for _ in range(args.steps):
                tf.nest.map_structure(lambda t: t.numpy(), steps[form](inputs, kernels))
            times[form].append((time.perf_counter() - start) / args.steps * 1000)
    base = statistics.median(times["reference"])
    print(f"\n| form | ms per step (4 layers, fwd+bwd) | x reference |  (size {args.size}, {args.rounds} rounds, "
          f"medians; oneDNN {'on' if onednn_enabled() else 'off'})\n|---|---:|---:|")
    for form in FORMS:
        median = statistics.median(times[form])
        print(f"| {form} | {median:.1f} | {median / base:.3f} |")
    generator = build_resnet_generator()
    image = tf.constant(rng.normal(size=(1, args.size, args.size, 3)).astype("float32"))

    @tf.function
    def whole(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(generator(x, training=True)))
        return tape.gradient(loss, generator.trainable_variables)

    tf.nest.map_structure(lambda t: t.numpy(), whole(image))
    start = time.perf_counter()
    for _ in range(args.steps):
        tf.nest.map_structure(lambda t: t.numpy(), whole(image))
    whole_ms = (time.perf_counter() - start) / args.steps * 1000
    print(f"\nthe whole ResNet-9 generator, forward and backward: {whole_ms:.1f} ms")


if __name__ == "__main__":
    main()
