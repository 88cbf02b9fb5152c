"""This machine's matrix-multiply rate: the yardstick for the training step's FLOP/s.

    python benchmarks/matmul_peak.py [--size 4096] [--repeats 5] [--bf16]

Prints one JSON line per library: the best rate of `--repeats` float32 products of two
`--size` x `--size` matrices, through TensorFlow (Eigen: the kernels that also run this
project's convolutions) and through NumPy's BLAS (OpenBLAS: closer to what the processor
itself can do). With `--bf16`, TensorFlow's bfloat16 product too (NumPy's is not BLAS).
See `tf_cyclegan.benchmarking.flops.matmul_rate`.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tf_cyclegan.benchmarking.flops import matmul_rate  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="also TensorFlow's bfloat16 product")
    args = parser.parse_args()
    runs = [("tensorflow", "float32"), ("numpy", "float32")] + [("tensorflow", "bfloat16")] * args.bf16
    for library, dtype in runs:
        rate = matmul_rate(args.size, dtype, args.repeats, library)
        print(json.dumps({
            "library": library, "dtype": rate["dtype"], "size": args.size,
            "gflop_per_s": round(rate["flop_per_s"] / 1e9, 1),
            "seconds": [round(s, 4) for s in rate["seconds"]],
        }), flush=True)


if __name__ == "__main__":
    main()
