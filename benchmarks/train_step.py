"""Throughput of the full CycleGAN training step as `fit` runs it, on this machine.

    python benchmarks/train_step.py --size 128 --steps 10 --warmup 2 [--precision float32]
    (the same as `tf-cyclegan bench ...`)

Both generators (ResNet, 9 blocks by default), both 70x70 PatchGANs, the image pools and
both optimizers, batch 1, random images, in one `fit` timed step by step. Prints one JSON
line with the same keys as `../shared/bench/torch_reference.py`, so the two can be run
side by side and compared: images_per_s (steady state after warm-up), first_step_s
(process start to the end of the first training step, imports included), peak_rss_mb,
parameter counts.
"""

import time

T0 = time.time()

import os  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tf_cyclegan.cli import build_parser, run_bench  # noqa: E402


def main():
    run_bench(build_parser().parse_args(["bench"] + sys.argv[1:]), start_time=T0)


if __name__ == "__main__":
    main()
