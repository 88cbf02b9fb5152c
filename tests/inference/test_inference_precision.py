import keras
import numpy as np
import pytest

from tf_cyclegan import build_resnet_generator
from tf_cyclegan.choices import PRECISIONS
from tf_cyclegan.inference.precision import computing_in, with_precision
from tf_cyclegan.precision import resolve_precision


def _psnr(output, reference):
    mse = np.mean(((np.asarray(output, np.float64) - reference) / 2.0) ** 2)  # in [0, 1] units
    return 10 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def generator_and_image():
    keras.utils.set_random_seed(0)
    generator = build_resnet_generator(filters=16, num_residual_blocks=2)
    image = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    return generator, image


@pytest.mark.parametrize("precision,floor", [("bfloat16", 35.0), ("float16", 40.0)])
def test_reduced_precisions_stay_close_to_float32(generator_and_image, precision, floor):
    generator, image = generator_and_image
    reference = keras.ops.convert_to_numpy(generator(image))
    assert reference.std() > 0.05  # a generator whose output varies, not a constant
    reduced = with_precision(generator, precision)
    output = keras.ops.convert_to_numpy(reduced(image))
    assert output.dtype == np.float32
    assert 0 < np.abs(output - reference).max()  # it really computed in another precision
    assert _psnr(output, reference) >= floor
    # The copy computes reduced but for its input and last layer; the original is untouched.
    assert reduced.get_layer("res1_conv1").compute_dtype == precision
    assert reduced.layers[-1].compute_dtype == "float32"
    assert all(layer.compute_dtype == "float32" for layer in generator.layers)
    for ours, theirs in zip(reduced.weights, generator.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))


def test_float32_is_the_generator_itself(generator_and_image):
    generator, _ = generator_and_image
    assert with_precision(generator, "float32") is generator


def test_computing_in_puts_the_policies_back_even_after_an_error(generator_and_image):
    generator, image = generator_and_image
    with pytest.raises(RuntimeError, match="inside"):
        with computing_in(generator, "bfloat16"):
            assert generator.get_layer("stem_conv").compute_dtype == "bfloat16"
            raise RuntimeError("inside")
    assert all(layer.dtype_policy.name == "float32" for layer in generator.layers)


def test_auto_picks_float16_on_a_gpu_bfloat16_on_a_bfloat16_cpu_else_float32(monkeypatch, tmp_path):
    from tf_cyclegan import runtime

    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n")
    plain = tmp_path / "plain"
    plain.write_text("flags\t\t: fpu sse avx2\n")
    real = runtime.cpu_flags
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    monkeypatch.setattr(runtime, "cpu_flags", lambda path="/proc/cpuinfo": real(str(amx)))
    assert resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(runtime, "cpu_flags", lambda path="/proc/cpuinfo": real(str(plain)))
    assert resolve_precision("auto") == "float32"
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    assert resolve_precision("auto") == "float16"
    assert resolve_precision("bfloat16") == "bfloat16"  # asked for, whatever the machine
    with pytest.raises(ValueError, match="precision='int4'"):
        resolve_precision("int4")
    assert PRECISIONS == ("auto", "float32", "bfloat16", "float16")
