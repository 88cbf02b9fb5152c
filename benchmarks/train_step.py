"""Throughput of the full CycleGAN training step as `fit` runs it, on this machine.

    python benchmarks/train_step.py --size 128 --steps 10 --warmup 2 [--precision float32]

Both generators (ResNet, 9 blocks by default), both 70x70 PatchGANs, the image pools and
both optimizers, batch 1, random images. Prints one JSON line with the same keys as
`../shared/bench/torch_reference.py`, so the two can be run side by side and compared:
images_per_s (steady state after warm-up), first_step_s (process start to the end of the
first training step, imports included), peak_rss_mb, parameter counts.
"""

import time

T0 = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_cyclegan as tc  # noqa: E402


class _StepClock(keras.callbacks.Callback):
    """Wall-clock time at the end of every training step."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.time())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--jit-compile", default="auto")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    tc.set_precision(args.precision)
    model = tc.CycleGAN(
        tc.build_resnet_generator(args.ngf, args.blocks), tc.build_resnet_generator(args.ngf, args.blocks),
        tc.build_patchgan_discriminator(), tc.build_patchgan_discriminator(),
    )
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile.lower()]
    model.compile(jit_compile=jit)
    shape = (args.batch, args.size, args.size, 3)
    data = tf.data.Dataset.from_tensors(
        (tf.random.uniform(shape, -1, 1), tf.random.uniform(shape, -1, 1))).repeat()

    # One fit, as training runs it: a second fit call would trace the step function again.
    clock = _StepClock()
    history = model.fit(data, epochs=1, steps_per_epoch=1 + args.warmup + args.steps, verbose=0, callbacks=[clock])
    first_step_s = clock.ends[0] - T0
    steady = clock.ends[1 + args.warmup:]
    seconds = steady[-1] - clock.ends[args.warmup]
    print(json.dumps({
        "impl": "tf_cyclegan", "tensorflow": tf.__version__, "keras": keras.__version__,
        "size": args.size, "batch": args.batch, "precision": args.precision,
        "images_per_s": round(args.steps * args.batch / seconds, 4),
        "first_step_s": round(first_step_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "params_generator": model.gen_a2b.count_params(),
        "params_discriminator": model.disc_a.count_params(),
        "final_loss_g": round(float(history.history["gen_total"][-1]), 4),
    }))


if __name__ == "__main__":
    main()
