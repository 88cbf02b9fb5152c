"""What the CPU speed-ups switch (`train.cpu_speedups`, `tf_cyclegan.speed`) is worth: on against off.

    python benchmarks/speedups.py --size 128 --rounds 3 [--steps 3 --warmup 1]
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/speedups.py ...   (TensorFlow's own kernels)

Each round runs the `tf-cyclegan bench` step (batch 1, ResNet-9, 70x70 PatchGANs, random
images, float32) in a fresh process with the switch off and one with it on; the order
alternates every round, so drift of the shared machine spreads over both. Prints every
run's JSON line, then one summary line: per round and as medians, the step time, time to
the first step and peak RSS of "on" over "off" (below 1: the switch saves).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = """
import time; T0 = time.time()
import json, sys
sys.path.insert(0, {root!r})
from tf_cyclegan.benchmarking.bench import train_step_benchmark
print(json.dumps(train_step_benchmark(size={size}, steps={steps}, warmup={warmup}, cpu_speedups={mode!r},
                                      jit_compile=False, start_time=T0)))
"""


def _run(mode, args):
    code = CHILD.format(root=os.path.join(HERE, ".."), size=args.size, steps=args.steps, warmup=args.warmup, mode=mode)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["mode"] = mode
    print(json.dumps(result), flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    ratios = {"step": [], "first_step": [], "peak_rss": []}
    for round_index in range(args.rounds):
        order = ("off", "on") if round_index % 2 == 0 else ("on", "off")
        runs = {mode: _run(mode, args) for mode in order}
        on, off = runs["on"], runs["off"]
        ratios["step"].append(off["images_per_s"] / on["images_per_s"])
        ratios["first_step"].append(on["first_step_s"] / off["first_step_s"])
        ratios["peak_rss"].append(on["peak_rss_mb"] / off["peak_rss_mb"])
    summary = {key: {"median": round(statistics.median(values), 3), "rounds": [round(v, 3) for v in values]}
               for key, values in ratios.items()}
    print(json.dumps({"on_over_off": summary, "onednn": on["onednn"], "size": args.size}))


if __name__ == "__main__":
    main()
