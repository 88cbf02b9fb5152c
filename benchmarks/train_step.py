"""Throughput of the full CycleGAN training step as `fit` runs it, on this machine.

    python benchmarks/train_step.py --size 128 --steps 10 --warmup 2 [--precision float32] [--cpu-speedups off]
    (the same options as `tf-cyclegan bench`; `--cpu-speedups` as `train.cpu_speedups`, default auto)
    python benchmarks/train_step.py --size 256 --batches 1,4,8,16 --precision float16 --jit-compile auto
    (a GPU run: one process per batch size, one JSON line each)

Both generators (ResNet, 9 blocks by default), both 70x70 PatchGANs, the image pools and
both optimizers, batch 1, random images, in one `fit` timed step by step. Prints one JSON
line with the same keys as `benchmarks/torch_reference.py`, so the two can be run
side by side and compared: images_per_s (steady state after warm-up), first_step_s
(process start to the end of the first training step, imports included), peak_rss_mb,
parameter counts; on a GPU also its name and TensorFlow's peak allocation on it
(`gpu`, `gpu_peak_memory_mb`: null on a CPU-only machine). The GPU fields have not yet
been seen on a real GPU: no machine of this project has one.
"""

import time

T0 = time.time()

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tf_cyclegan.cli import bench_kwargs, build_parser  # noqa: E402


def main():
    argv = sys.argv[1:]
    if "--batches" in argv:  # each batch size in a fresh process: first-step time and peaks are per process
        at = argv.index("--batches")
        batches, rest = argv[at + 1].split(","), argv[:at] + argv[at + 2:]
        for batch in batches:
            subprocess.run([sys.executable, __file__, *rest, "--batch", batch.strip()], check=True)
        return
    import json

    from tf_cyclegan.benchmarking.bench import train_step_benchmark
    from tf_cyclegan.runtime import set_cpu_allocator

    args = build_parser().parse_args(["bench"] + argv)
    set_cpu_allocator(args.cpu_allocator)  # as `tf-cyclegan bench` does, before TensorFlow starts
    print(json.dumps(train_step_benchmark(**bench_kwargs(args), start_time=T0)))


if __name__ == "__main__":
    main()
