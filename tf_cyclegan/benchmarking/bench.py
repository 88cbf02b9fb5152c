"""The training-step benchmark behind `tf-cyclegan bench` and `benchmarks/train_step.py`.

Both generators, both discriminators, the pools and both optimizers, batch `batch`,
random images, run by one `fit` and timed step by step. Returns the keys of
`benchmarks/torch_reference.py`, so the two can be compared side by side.
"""

import os
import resource
import time

import keras
import tensorflow as tf

from tf_cyclegan.benchmarking.arguments import check_bench_arguments
from tf_cyclegan.benchmarking.flops import training_step_flops


def process_start_time():
    """Wall-clock time at which this process started (Linux /proc, to the second), or None."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of proc(5); fields here start at field 3
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class _StepClock(keras.callbacks.Callback):
    """Wall-clock time at the end of every training step."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.time())


def _gpu_name():
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    return details.get("device_name", "GPU")


def train_step_benchmark(size=128, batch=1, filters=64, num_residual_blocks=9, steps=10, warmup=2, precision="float32",
                         jit_compile="auto", start_time=None, upsampling="transpose",
                         cpu_speedups="auto", model_kind="cyclegan"):
    """Times the training step of a CycleGAN (or a CUT or FastCUT model) as `fit` runs it.

    Args:
        size, batch: image size and batch of the random training data.
        filters, num_residual_blocks: the generators' (64 and 9: the paper's ResNet-9); the
            discriminators are the paper's 70x70 PatchGANs.
        steps: timed steps (at least 1), after `warmup` untimed ones (0 or more) and the first.
            Every number is checked before any work (`check_bench_arguments`): size a
            multiple of 4 of at least 24 (what the PatchGAN takes), batch and filters positive.
        precision: "float32", "bfloat16" or "float16" (`tf_cyclegan.precision`).
        jit_compile: "auto", True or False, as for `compile`.
        start_time: when the process started (`time.time()`), for `first_step_s`;
            default: from /proc.
        upsampling: the generators' ("transpose", the reference's, or "resize").
        cpu_speedups: "auto", "on" or "off", as `train.cpu_speedups` (`tf_cyclegan.speed`).
        model_kind: "cyclegan" (default), "cut" or "fastcut" (`model.kind`): the same
            generator and discriminator sizes, each method's own step. CUT's PatchNCE reads
            residual block 5, so it needs num_residual_blocks >= 5; `upsampling` is CycleGAN's.

    Returns:
        dict: images_per_s (steady state), first_step_s (process start to the end of the
        first step, imports included), peak_rss_mb, step_gflop (the arithmetic one update
        needs, `tf_cyclegan.benchmarking.flops.training_step_flops`), gflop_per_s (that at the steady
        rate), params_generator, params_discriminator, final_loss_g, gpu (the GPU's name)
        and gpu_peak_memory_mb (TensorFlow's peak allocation on it), both None without a GPU,
        and the versions and settings (jit_compile as `compile` resolved it; the CPU allocator
        in use: `tf-cyclegan bench --cpu-allocator` chooses it).
    """
    from tf_cyclegan.models.kinds import build_model
    from tf_cyclegan.precision import set_precision
    from tf_cyclegan.runtime import cpu_allocator_in_use, has_gpu, onednn_enabled
    from tf_cyclegan.speed import apply_cpu_speedups

    check_bench_arguments(size=size, batch=batch, filters=filters, num_residual_blocks=num_residual_blocks,
                          steps=steps, warmup=warmup)
    if model_kind != "cyclegan" and upsampling != "transpose":
        raise ValueError(f"upsampling is CycleGAN's: a {model_kind} model has CUT's anti-aliased upsampling. "
                         f"Received: upsampling={upsampling!r}")
    if model_kind != "cyclegan" and num_residual_blocks < 5:
        raise ValueError(f"A {model_kind} model needs num_residual_blocks >= 5 (PatchNCE reads residual block 5). "
                         f"Received: num_residual_blocks={num_residual_blocks!r}")
    start_time = start_time or process_start_time() or time.time()
    keras.utils.set_random_seed(0)
    users_policy = keras.mixed_precision.global_policy()
    set_precision(precision)
    try:
        gpu = _gpu_name() if has_gpu() else None
        if gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
        if model_kind == "cyclegan":
            model = build_model(model_kind, filters=filters, num_residual_blocks=num_residual_blocks,
                                upsampling=upsampling)
        else:
            model = build_model(model_kind, filters=filters, num_residual_blocks=num_residual_blocks, seed=0)
        model.compile(jit_compile=jit_compile)
        speedups = apply_cpu_speedups(model, cpu_speedups)
        shape = (batch, size, size, 3)
        data = tf.data.Dataset.from_tensors(
            (tf.random.uniform(shape, -1, 1), tf.random.uniform(shape, -1, 1))).repeat()
        # One fit, as training runs it: separate fit calls each pay start-up work again.
        clock = _StepClock()
        history = model.fit(data, epochs=1, steps_per_epoch=1 + warmup + steps, verbose=0,
                            callbacks=[clock])
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        gpu_peak_mb = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20 if gpu else None
        # Counted after the timed run: it traces each network once more. CycleGAN's only.
        step_flop = training_step_flops(model, shape) if model_kind == "cyclegan" else None
    finally:
        keras.mixed_precision.set_global_policy(users_policy)
    seconds = clock.ends[-1] - clock.ends[warmup]
    images_per_s = steps * batch / seconds
    return {
        "impl": "tf_cyclegan", "tensorflow": tf.__version__, "keras": keras.__version__,
        "model_kind": model_kind, "size": size, "batch": batch, "upsampling": upsampling, "precision": precision,
        "jit_compile": bool(model.jit_compile),
        "cpu_allocator": cpu_allocator_in_use(), "onednn": onednn_enabled(),
        "cpu_speedups": sorted(name for name, on in speedups.items() if on),
        "images_per_s": round(images_per_s, 4),
        "first_step_s": round(clock.ends[0] - start_time, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "gpu": gpu, "gpu_peak_memory_mb": None if gpu_peak_mb is None else round(gpu_peak_mb, 1),
        "step_gflop": None if step_flop is None else round(step_flop / 1e9, 2),
        "gflop_per_s": None if step_flop is None else round(step_flop / 1e9 * images_per_s / batch, 1),
        "params_generator": model.get_generator("a2b", "raw").count_params(),
        "params_discriminator": (model.disc_a if model_kind == "cyclegan" else model.discriminator).count_params(),
        "final_loss_g": round(float(history.history["gen_total"][-1]), 4),
    }
