import math
import os
import time

import keras
import pytest

from tf_cyclegan import runtime
from tf_cyclegan.benchmarking.bench import process_start_time, train_step_benchmark


def test_the_process_start_time_is_a_moment_of_this_process():
    started = process_start_time()
    if not os.path.exists("/proc/self/stat"):  # no procfs (not Linux): no time, rather than a wrong one
        assert started is None
        return
    assert time.time() - 24 * 3600 < started <= time.time() + 1


@pytest.mark.slow
def test_a_tiny_benchmark_returns_every_key_with_sane_values():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # the caller's policy, put back after
    start = time.time()
    result = train_step_benchmark(size=32, filters=4, num_residual_blocks=1, steps=2, warmup=1, jit_compile=False,
                                  start_time=start)
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert set(result) == {
        "impl", "tensorflow", "keras", "model_kind", "size", "batch", "upsampling", "precision", "jit_compile",
        "cpu_allocator",
        "onednn", "images_per_s", "first_step_s", "peak_rss_mb", "gpu", "gpu_peak_memory_mb", "step_gflop",
        "gflop_per_s", "params_generator", "params_discriminator", "final_loss_g", "cpu_speedups",
    }
    assert (result["impl"], result["size"], result["batch"], result["precision"]) == ("tf_cyclegan", 32, 1, "float32")
    assert result["upsampling"] == "transpose"
    assert result["tensorflow"] and result["keras"] == keras.__version__
    assert result["jit_compile"] is False and result["cpu_allocator"] in ("bfc", "malloc", "onednn")
    assert 0 < result["images_per_s"] < 10_000
    assert 0 < result["first_step_s"] < time.time() - start + 1
    assert result["peak_rss_mb"] > 100  # TensorFlow alone takes more
    # The ResNet generator of 4 filters and 1 block, against the paper's PatchGAN (64 filters).
    assert result["params_generator"] == _params(4, 1)
    assert result["params_discriminator"] == 2_764_737
    assert result["step_gflop"] > 0 and result["gflop_per_s"] > 0
    assert math.isfinite(result["final_loss_g"]) and result["final_loss_g"] > 0
    # No GPU: null, not 0; with one, its name and TensorFlow's peak allocation on it.
    assert (result["gpu"] is None) == (result["gpu_peak_memory_mb"] is None) == (not runtime.has_gpu())


def _params(filters, num_residual_blocks):
    from tf_cyclegan import build_resnet_generator

    return build_resnet_generator(filters=filters, num_residual_blocks=num_residual_blocks).count_params()


@pytest.mark.slow
def test_the_benchmark_times_each_upsampling_and_counts_its_arithmetic():
    # The resize's convolutions run at the doubled size, the transposed ones at the input's
    # (as counted, see flops.forward_macs): more arithmetic, the same parameters.
    results = {upsampling: train_step_benchmark(size=32, filters=4, num_residual_blocks=1, steps=1, warmup=0,
                                                jit_compile=False, upsampling=upsampling)
               for upsampling in ("transpose", "resize")}
    assert results["resize"]["upsampling"] == "resize"
    assert results["resize"]["params_generator"] == results["transpose"]["params_generator"]
    assert results["resize"]["step_gflop"] > results["transpose"]["step_gflop"]


@pytest.mark.parametrize("arguments, message", [
    ({"steps": 0}, "steps must be positive. Received: 0"),  # was a ZeroDivisionError
    ({"warmup": -1}, "warmup must not be negative. Received: -1"),  # was a ZeroDivisionError
    ({"warmup": -3}, "warmup must not be negative. Received: -3"),  # was twice the real rate
    ({"size": 30}, "size must be a multiple of 4 .* of at least 24. Received: 30"),
    ({"size": 20}, "size must be a multiple of 4 .* of at least 24. Received: 20"),  # the PatchGAN's minimum
    ({"size": 0}, "size must be a multiple of 4"),
    ({"batch": 0}, "batch must be positive. Received: 0"),
    ({"filters": 0}, "filters must be positive. Received: 0"),
    ({"num_residual_blocks": -1}, "num_residual_blocks must not be negative. Received: -1"),
    ({"steps": 2.5}, "steps must be an integer. Received: 2.5"),
])
def test_a_bad_number_is_refused_before_anything_is_built(monkeypatch, arguments, message):
    # The builder the benchmark calls, patched where it is looked up. (Patching
    # `cyclegan.build_cyclegan` leaked: where this test was the first to import
    # `models.kinds`, kinds kept the patched builder, and later benchmarks failed.)
    from tf_cyclegan.models import kinds

    def not_built(*args, **kwargs):
        raise AssertionError("built a model for a benchmark that cannot run")

    monkeypatch.setattr(kinds, "build_model", not_built)
    with pytest.raises(ValueError, match=message):
        train_step_benchmark(**arguments)
