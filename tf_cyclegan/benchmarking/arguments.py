"""The numbers `train_step_benchmark` accepts, checked before any work.

A module of its own, free of TensorFlow, so that `tf-cyclegan bench` checks its options with
these same rules (`tf_cyclegan.checks.check_int` and `check_image_size`) before TensorFlow loads.
"""

from tf_cyclegan.checks import check_image_size, check_int, min_training_size

# By argument: a step needs images the discriminator takes (24 px for its 3 stride-2 layers);
# at least one timed step and no negative warm-up, or the rate divides by nothing or counts
# untimed steps.
BENCH_CHECKS = {
    "size": lambda key, value: check_image_size(key, value, minimum=min_training_size()),
    "batch": lambda key, value: check_int(key, value, minimum=1),
    "filters": lambda key, value: check_int(key, value, minimum=1),
    "num_residual_blocks": lambda key, value: check_int(key, value, minimum=0),
    "steps": lambda key, value: check_int(key, value, minimum=1),
    "warmup": lambda key, value: check_int(key, value, minimum=0),
}


def check_bench_arguments(**arguments):
    """Raises `ValueError` naming the first of `arguments` (`size=128`, ...)
    that `train_step_benchmark` cannot run with."""
    for name, value in arguments.items():
        BENCH_CHECKS[name](name, value)
