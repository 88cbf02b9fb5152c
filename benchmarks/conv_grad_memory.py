"""Scratch memory of TensorFlow's convolution gradients on this CPU, beyond their output.

    python benchmarks/conv_grad_memory.py [--batch 3] [--size 256] [--channels 64] [--kernel 3]
    TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/conv_grad_memory.py ...   (oneDNN's kernels)

Why: most of the training step's peak memory above its activations is here. With the
default (Eigen) kernels a 3x3 convolution's input and filter gradients each take several
times their input in scratch; oneDNN's take about as much as the input. Runs each gradient
op once to warm up, then once measured, under TensorFlow's BFC allocator (the only one that
reports a peak). Prints one JSON line of megabytes.
"""

import argparse
import json
import os
import sys

os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tensorflow as tf  # noqa: E402

from tf_cyclegan.runtime import onednn_enabled  # noqa: E402


def _megabytes(num_bytes):
    return round(num_bytes / 2**20, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=3, help="3: a generator's stacked call")
    parser.add_argument("--size", type=int, default=256, help="output height and width")
    parser.add_argument("--channels", type=int, default=64, help="input and output channels")
    parser.add_argument("--kernel", type=int, default=3)
    args = parser.parse_args()
    padded = args.size + args.kernel - 1
    inputs = tf.random.normal([args.batch, padded, padded, args.channels])
    kernel = tf.random.normal([args.kernel, args.kernel, args.channels, args.channels])
    upstream = tf.random.normal([args.batch, args.size, args.size, args.channels])
    conv = dict(strides=[1, 1, 1, 1], padding="VALID")
    gradients = {
        "input_gradient": tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(inputs), filter=kernel, out_backprop=upstream, **conv)),
        "filter_gradient": tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=inputs, filter_sizes=tf.shape(kernel), out_backprop=upstream, **conv)),
    }
    result = {"onednn": onednn_enabled(), **vars(args),
              "input_mb": _megabytes(inputs.numpy().nbytes)}
    for name, gradient in gradients.items():
        gradient()
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        tf.config.experimental.reset_memory_stats("CPU:0")
        output = gradient()
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
        result[f"{name}_scratch_mb"] = _megabytes(peak - before - output.numpy().nbytes)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
