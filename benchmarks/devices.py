"""What each CPU performance device of the training step is worth: leave one out at a time.

    python benchmarks/devices.py --size 128 --rounds 3 [--devices a,b,...] [--steps 4 --warmup 1]
    TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/devices.py ...   (the other kernel library)

Each round runs the `tf-cyclegan bench` step (batch 1, ResNet-9, 70x70 PatchGANs, random
images) in a fresh process per variant: the code as it is ("baseline"), the code with one
device switched back to plain Keras / TensorFlow ("-device", one process per device), all
of them switched back at once ("-all"), and the baseline once more ("baseline/again": the
A/A comparison that says how far two runs of the same code differ on this machine). The
order is reversed every other round, so drift of the shared machine spreads over all
variants. Prints every run's JSON line, then one summary line: per variant the median over
rounds of its change against the round's two baselines (step time, first step, peak RSS),
with the A/A spread beside them.

The devices are the ones `tf_cyclegan.speed` attaches (`train.cpu_speedups`, on by default
without a GPU); one is left out here, in the benchmark's child process, by putting back what
plain Keras and TensorFlow do. `benchmarks/speedups.py` measures the whole switch, on
against off. Devices that did not
pay were removed from the package, and with them from this list; docs/performance.md keeps
their figures, measured by this script before their removal (commit 676a4f7).
"""

import time

T0 = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def _plain_instance_norm(x, epsilon, slope, gamma=None, beta=None, custom_gradient=None):
    """Instance norm (float32 statistics) and its activation, differentiated op by op."""
    import tensorflow as tf

    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
    y32 = (x32 - mean) * tf.math.rsqrt(variance + epsilon)
    if gamma is not None:
        y32 = y32 * tf.cast(gamma, tf.float32) + tf.cast(beta, tf.float32)
    y = tf.cast(y32, x.dtype)
    if slope is None:
        return y
    return tf.nn.relu(y) if slope == 0 else tf.nn.leaky_relu(y, alpha=slope)


def _switch_off(device):
    """Puts back plain Keras / TensorFlow in place of `device` in this process (the switch
    `train.cpu_speedups` attaches the others as usual)."""
    from tf_cyclegan.layers import instance_normalization
    from tf_cyclegan.models import cyclegan
    from tf_cyclegan.speed import fused_adam, grappler, lean_conv, tape

    if device == "grappler":
        grappler.lean_training_function = lambda function: function
    elif device == "fused_adam":
        fused_adam.attach = lambda optimizer: False
    elif device == "conv_lean_gradients":
        lean_conv.attach = lambda layer: False
    elif device == "instance_norm_gradient":
        instance_normalization._instance_norm = _plain_instance_norm
    elif device == "tape_record":
        tape.tape_record_module = lambda: None  # `recorded_custom_gradient` is `tf.custom_gradient` then
    elif device == "stacked_calls":
        cyclegan.CycleGAN._call_stacked = lambda self, network, training, *inputs: self._call_each(
            network, training, *inputs)
    else:
        raise ValueError(f"unknown device {device!r}")


DEVICES = (
    "grappler", "fused_adam", "conv_lean_gradients", "instance_norm_gradient",
    "tape_record", "stacked_calls",
)
KEYS = ("step_s", "first_step_s", "peak_rss_mb")


def _child(devices, bench_argv):
    from tf_cyclegan.cli import build_parser, run_bench

    for device in devices:
        _switch_off(device)
    run_bench(build_parser().parse_args(["bench"] + bench_argv), start_time=T0)


def _run(variant, off, bench_argv):
    command = [sys.executable, __file__, "--child", ",".join(off), "--"] + bench_argv
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{variant} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(lines[-1])
    result["variant"] = variant
    result["step_s"] = round(1 / result["images_per_s"], 4)
    return result


def main():
    if "--child" in sys.argv:
        at = sys.argv.index("--child")
        off = [d for d in sys.argv[at + 1].split(",") if d]
        return _child(off, sys.argv[sys.argv.index("--") + 1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--devices", default=",".join(DEVICES), help="comma-separated devices to leave out one by one")
    args = parser.parse_args()
    devices = [d for d in args.devices.split(",") if d]
    unknown = sorted(set(devices) - set(DEVICES))
    if unknown:
        parser.error(f"--devices: unknown {', '.join(unknown)} (known: {', '.join(DEVICES)})")
    bench_argv = ["--size", str(args.size), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    variants = [("baseline", [])] + [(f"-{d}", [d]) for d in devices] + [("-all", list(DEVICES)),
                                                                        ("baseline/again", [])]
    runs = {name: [] for name, _ in variants}
    for round_index in range(args.rounds):
        order = variants if round_index % 2 == 0 else variants[::-1]
        for name, off in order:
            result = _run(name, off, bench_argv)
            result["round"] = round_index
            runs[name].append(result)
            print(json.dumps(result), flush=True)

    def change(name, key):
        """Median over rounds of (variant / mean of the round's two baselines - 1), in %."""
        values = []
        for r in range(args.rounds):
            base = (runs["baseline"][r][key] + runs["baseline/again"][r][key]) / 2
            values.append(100 * (runs[name][r][key] / base - 1))
        return round(statistics.median(values), 1)

    def aa(key):
        """The A/A spread: per round |again / baseline - 1| in %, median and largest."""
        spreads = [100 * abs(runs["baseline/again"][r][key] / runs["baseline"][r][key] - 1) for r in range(args.rounds)]
        return {"median": round(statistics.median(spreads), 1), "max": round(max(spreads), 1)}

    baseline = {key: statistics.median(r[key] for r in runs["baseline"] + runs["baseline/again"]) for key in KEYS}
    summary = {
        "size": args.size, "rounds": args.rounds, "onednn": runs["baseline"][0]["onednn"],
        "cpu_allocator": runs["baseline"][0]["cpu_allocator"],
        "baseline_medians": {key: round(value, 3) for key, value in baseline.items()},
        "aa_spread_percent": {key: aa(key) for key in KEYS},
        "change_percent_when_left_out": {
            name: {key: change(name, key) for key in KEYS} for name, _ in variants if name.startswith("-")
        },
        "first_step_change_s_when_left_out": {
            name: round(statistics.median(
                runs[name][r]["first_step_s"] - (runs["baseline"][r]["first_step_s"]
                                                 + runs["baseline/again"][r]["first_step_s"]) / 2
                for r in range(args.rounds)), 2)
            for name, _ in variants if name.startswith("-")
        },
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
