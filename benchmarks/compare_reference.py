"""Side by side with the PyTorch reference: alternating runs, medians and ratios.

    python benchmarks/compare_reference.py --size 128 --rounds 3 \\
        --torch-python /path/to/venv-with-torch/bin/python [--allocators bfc,malloc] [--bf16] \\
        [--cpu-speedups on,off]

Each round runs `benchmarks/torch_reference.py` and then `tf-cyclegan bench`, its clock
started at process start as `benchmarks/train_step.py` does (once per allocator and CPU
speed-up setting, `train.cpu_speedups`), as separate processes, one after another, with the
same size, steps and warm-up (8 + 2 at 128 px, 4 + 1 above,
unless given). Alternating rounds spread the shared machine's drift over both sides, and
medians over rounds keep one slow start from deciding the first-step ratio, which moves by
seconds between runs of the same code.
Then, once, this machine's matrix-multiply rate (`benchmarks/matmul_peak.py`).
Prints every run's JSON line, then one summary line: per implementation the median
images/s, first-step seconds and peak RSS, and the ratios of ours to the reference's
medians; the FLOP/s each reaches (the same update, counted once from the layer shapes by
`tf_cyclegan.benchmarking.flops.training_step_flops`) and its fraction of the matrix-multiply rates.
With `--bf16`, the reference autocasts to bfloat16 and ours computes in bfloat16.
torch is never imported here: it lives in its own environment (`--torch-python`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = ("images_per_s", "first_step_s", "peak_rss_mb")
ROOT = os.path.dirname(HERE)
# `tf-cyclegan bench` with the clock started at process start, as benchmarks/train_step.py
# and the reference's script start theirs (argv: the repository, then bench's options).
_BENCH = (
    "import time; T0 = time.time()\n"
    "import os, sys; os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3'); sys.path.insert(0, sys.argv[1])\n"
    "from tf_cyclegan.cli import build_parser, run_bench\n"
    "run_bench(build_parser().parse_args(['bench'] + sys.argv[2:]), start_time=T0)\n"
)


def _run_all(command):
    """Runs one benchmark process; returns the JSON of every line it printed."""
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in lines]


def _run(command):
    """Runs one benchmark process; returns the JSON of the last line it printed."""
    return _run_all(command)[-1]


def _medians(runs):
    return {key: round(statistics.median(run[key] for run in runs), 4) for key in KEYS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, help="timed steps (default 8 at 128 px or less, else 4)")
    parser.add_argument("--warmup", type=int, help="untimed steps after the first (default 2, or 1 above 128 px)")
    parser.add_argument("--torch-python", required=True, help="a Python that has torch (2.13.0) installed")
    parser.add_argument("--reference", default=os.path.join(HERE, "torch_reference.py"))
    parser.add_argument("--allocators", default="auto", help="comma-separated CPU allocators to run ours with")
    parser.add_argument("--cpu-speedups", default="auto",
                        help="comma-separated settings (auto, on, off) to run ours with")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    if not os.path.isfile(args.reference):
        parser.error(f"--reference: no such file: {args.reference}")
    small = args.size <= 128
    steps = args.steps or (8 if small else 4)
    warmup = args.warmup if args.warmup is not None else (2 if small else 1)
    common = ["--size", str(args.size), "--steps", str(steps), "--warmup", str(warmup)]
    reference = [args.torch_python, args.reference] + common + (["--bf16"] if args.bf16 else [])
    precision = ["--precision", "bfloat16" if args.bf16 else "float32"]
    ours = {
        allocator if speedups == "auto" else f"{allocator}/speedups_{speedups}":
        [sys.executable, "-c", _BENCH, ROOT] + common + precision
        + ["--cpu-allocator", allocator, "--cpu-speedups", speedups]
        for allocator in args.allocators.split(",") for speedups in args.cpu_speedups.split(",")
    }

    runs = {"reference": []} | {f"tf_cyclegan/{allocator}": [] for allocator in ours}
    for _ in range(args.rounds):
        result = _run(reference)
        runs["reference"].append(result)
        print(json.dumps(result), flush=True)
        for allocator, command in ours.items():
            result = _run(command)
            runs[f"tf_cyclegan/{allocator}"].append(result)
            print(json.dumps(result), flush=True)

    peaks = _run_all([sys.executable, os.path.join(HERE, "matmul_peak.py")] + ["--bf16"] * args.bf16)
    for peak in peaks:
        print(json.dumps(peak), flush=True)

    medians = {name: _medians(results) for name, results in runs.items()}
    ratios = {
        name: {key: round(value / medians["reference"][key], 3) for key, value in median.items()}
        for name, median in medians.items() if name != "reference"
    }
    # Both sides do the same update (batch 1), so one count divides both rates.
    step_gflop = runs[next(name for name in runs if name != "reference")][0]["step_gflop"]
    rates = {}
    for name, median in medians.items():
        gflop_per_s = step_gflop * median["images_per_s"]
        rates[name] = {"gflop_per_s": round(gflop_per_s, 1)} | {
            f"of_{peak['library']}_{peak['dtype']}_matmul": round(gflop_per_s / peak["gflop_per_s"], 3)
            for peak in peaks
        }
    print(json.dumps({"size": args.size, "rounds": args.rounds, "bf16": args.bf16,
                      "medians": medians, "ratios_to_reference": ratios,
                      "step_gflop": step_gflop, "arithmetic_rates": rates,
                      "matmul_gflop_per_s": {f"{p['library']}_{p['dtype']}": p["gflop_per_s"] for p in peaks}}))


if __name__ == "__main__":
    main()
