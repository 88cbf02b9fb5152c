"""Size of the traced CycleGAN training step: ops in the graph and the time to trace it.

    python benchmarks/trace_size.py [--size 128] [--filters 64] [--num-residual-blocks 9]

Tracing (and the graph optimisation that follows, which scales with the graph) is most
of what happens before the first training step, so fewer ops means an earlier first step.
Traces `CycleGAN.train_step` as `fit` does (no autograph), prints one JSON line with the
op count, the most common op types and the trace time (wall clock, and the CPU time of
the tracing thread, which moves less on a shared machine). Nothing is run.
"""

import argparse
import collections
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_cyclegan.models.cyclegan import build_cyclegan  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--num-residual-blocks", type=int, default=9)
    parser.add_argument("--filters", type=int, default=64)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = build_cyclegan(filters=args.filters, num_residual_blocks=args.num_residual_blocks)
    model.compile(jit_compile=False)
    # As fit does before tracing: a step that creates variables (the pools) is traced twice.
    model.build((1, args.size, args.size, 3))
    spec = tf.TensorSpec((1, args.size, args.size, 3))
    start, start_cpu = time.time(), time.thread_time()
    graph = tf.function(model.train_step, autograph=False).get_concrete_function((spec, spec)).graph
    seconds, cpu_seconds = time.time() - start, time.thread_time() - start_cpu
    types = collections.Counter(op.type for op in graph.get_operations())
    print(json.dumps({
        "size": args.size, "ops": sum(types.values()),
        "trace_s": round(seconds, 2), "trace_cpu_s": round(cpu_seconds, 2),
        "top_op_types": dict(types.most_common(8)),
    }))


if __name__ == "__main__":
    main()
