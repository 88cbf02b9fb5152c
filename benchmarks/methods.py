"""CycleGAN, CUT and FastCUT side by side: training step time and peak memory at the same sizes.

    python benchmarks/methods.py --size 256 --rounds 2 [--steps 3 --warmup 1]

Each round runs the `tf-cyclegan bench --model-kind K` step (batch 1, ResNet-9 generators,
70x70 PatchGANs, random images, float32, the CPU speed-ups as `auto` sets them) for each
method in a fresh process, in an order that rotates every round so that drift of a shared
machine spreads over all three. Prints every run's JSON line, then per method the median
step time and peak RSS and their ratio to CycleGAN's (the targets: FastCUT's step at most
0.5x CycleGAN's and its peak memory at most 0.7x; CUT's step at most 0.8x).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("cyclegan", "cut", "fastcut")
CHILD = """
import time; T0 = time.time()
import json, sys
sys.path.insert(0, {root!r})
from tf_cyclegan.benchmarking.bench import train_step_benchmark
print(json.dumps(train_step_benchmark(size={size}, steps={steps}, warmup={warmup}, model_kind={kind!r},
                                      start_time=T0)))
"""


def _run(kind, args):
    code = CHILD.format(root=os.path.join(HERE, ".."), size=args.size, steps=args.steps, warmup=args.warmup,
                        kind=kind)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    runs = {kind: [] for kind in KINDS}
    for round_ in range(args.rounds):
        order = KINDS[round_ % 3:] + KINDS[:round_ % 3]
        for kind in order:
            result = _run(kind, args)
            runs[kind].append(result)
            print(json.dumps(result), flush=True)
    step = {kind: statistics.median(1 / r["images_per_s"] for r in rs) for kind, rs in runs.items()}
    peak = {kind: statistics.median(r["peak_rss_mb"] for r in rs) for kind, rs in runs.items()}
    print(f"\n| method | step s | x CycleGAN | peak RSS MB | x CycleGAN |  (size {args.size}, "
          f"{args.rounds} rounds, medians)\n|---|---:|---:|---:|---:|")
    for kind in KINDS:
        print(f"| {kind} | {step[kind]:.2f} | {step[kind] / step['cyclegan']:.2f} | {peak[kind]:.0f} | "
              f"{peak[kind] / peak['cyclegan']:.2f} |")


if __name__ == "__main__":
    main()
