"""What the CPU speed-ups switch (`train.cpu_speedups`, `tf_cyclegan.speed`) is worth: on against off.

    python benchmarks/speedups.py --size 128 --rounds 3 [--steps 3 --warmup 1]
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/speedups.py ...   (TensorFlow's own kernels)

Each round runs the `tf-cyclegan bench` step (batch 1, ResNet-9, 70x70 PatchGANs, random
images, float32) in a fresh process with the switch off and one with it on; the order
alternates every round, so drift of the shared machine spreads over both. Prints every
run's JSON line, then one summary line: per round and as medians, the step time, time to
the first step and peak RSS of "on" over "off" (below 1: the switch saves).

    python benchmarks/speedups.py --interleaved --size 128 --steps 6

On a machine shared with other work, step times of separate processes drift by tens of
percent within minutes. `--interleaved` builds both models in one process (same initial
weights, same batch) and times their steps alternately, on, off, on, off, ... so that both
see the same load; it prints each pair and the median of the per-pair ratios (step time
only: the first step and peak memory are per process).
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


def _leave_out(model, device):
    """Takes one device of the switch off `model` again (for `--variants on-<device>`)."""
    from tf_cyclegan import speed
    from tf_cyclegan.speed import fused_adam, lean_conv

    layers = speed._network_layers(model)
    if device == "stacked_calls":
        model.stack_network_calls = False
    elif device == "grappler":
        model.train_function_wrapper = None
    elif device == "fused_adam":
        for optimizer in (model.gen_optimizer, model.disc_optimizer):
            fused_adam.detach(optimizer)
    elif device == "tape":
        for layer in layers:
            layer.__dict__.pop("custom_gradient", None)
    elif device == "lean_conv":
        for layer in layers:
            lean_conv.detach(layer)
    else:
        raise ValueError(f"unknown device {device!r}")
    model.train_function = None


def interleaved(size, steps, variants=("on", "off")):
    """Median over `steps` rounds, in this process, of each variant's step time over "off"'s.

    A variant is "on", "off" or "on-<device>" (the switch on but for one device: stacked_calls,
    grappler, fused_adam, tape, lean_conv). Each round runs one step of every variant, in an
    order that rotates from round to round."""
    import time

    import keras
    import tensorflow as tf

    sys.path.insert(0, os.path.join(HERE, ".."))
    from tf_cyclegan.models.cyclegan import build_cyclegan
    from tf_cyclegan.runtime import onednn_enabled
    from tf_cyclegan.speed import apply_cpu_speedups

    shape = (1, size, size, 3)
    real_a, real_b = tf.random.uniform(shape, -1, 1, seed=1), tf.random.uniform(shape, -1, 1, seed=2)
    variants = list(dict.fromkeys(["off", *variants]))
    models = {}
    for variant in variants:
        keras.utils.set_random_seed(0)
        model = build_cyclegan()
        model.compile(jit_compile=False)
        apply_cpu_speedups(model, "off" if variant == "off" else "on")
        if variant.startswith("on-"):
            _leave_out(model, variant[3:])
        model.train_on_batch(real_a, real_b)  # traced and optimised: the first step
        models[variant] = model
    rounds = []
    for i in range(steps):
        seconds = {}
        shift = i % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            start = time.perf_counter()
            models[variant].train_on_batch(real_a, real_b)
            seconds[variant] = time.perf_counter() - start
        rounds.append(seconds)
        print(json.dumps({"round": i, **{k: round(v, 3) for k, v in seconds.items()}}), flush=True)
    summary = {
        variant: {"median": round(statistics.median(r[variant] / r["off"] for r in rounds), 3),
                  "rounds": [round(r[variant] / r["off"], 3) for r in rounds]}
        for variant in variants if variant != "off"
    }
    print(json.dumps({"step_time_over_off": summary, "onednn": onednn_enabled(), "size": size}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interleaved", action="store_true", help="both in one process, steps alternating")
    parser.add_argument("--variants", default="on", help="with --interleaved: on, on-<device>, ... (off always runs)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    if args.interleaved:
        interleaved(args.size, args.steps, args.variants.split(","))
        return
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
