import keras
import pytest

from tf_cyclegan import precision, runtime
from tf_cyclegan.training.config import load_config


def test_explicit_precisions_pass_through_and_name_their_keras_policy():
    for name, policy in (("float32", "float32"), ("bfloat16", "mixed_bfloat16"), ("float16", "mixed_float16")):
        assert precision.resolve_precision(name) == name
        assert precision.keras_policy(name) == policy


def test_auto_picks_per_device(monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    assert precision.resolve_precision("auto") == "float16"
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    assert precision.resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    assert precision.resolve_precision("auto") == "float32"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "with").write_text("flags\t: fpu sse avx2 avx512_bf16 amx_tile\n")
    (tmp_path / "without").write_text("flags\t: fpu sse avx2\n")
    assert precision.cpu_has_bfloat16(tmp_path / "with")
    assert not precision.cpu_has_bfloat16(tmp_path / "without")
    assert not precision.cpu_has_bfloat16(tmp_path / "missing")


def test_a_bad_precision_is_named():
    with pytest.raises(ValueError, match="'int8'"):
        precision.resolve_precision("int8")


def test_set_precision_sets_the_policy_and_returns_the_word():
    assert precision.set_precision("bfloat16") == "bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


def test_the_words_of_version_0_2_0_still_work_with_a_warning_naming_the_new_one():
    with pytest.warns(UserWarning, match="'mixed_float16' is now called 'float16'"):
        assert precision.resolve_precision("mixed_float16") == "float16"
    with pytest.warns(UserWarning, match="'mixed_bfloat16' is now called 'bfloat16'"):
        assert load_config(sets=["train.precision=mixed_bfloat16"]).train.precision == "bfloat16"


def test_the_commands_take_the_same_words_and_the_old_ones_with_a_warning():
    from tf_cyclegan.cli import build_parser

    for command in (["bench"], ["translate", "--model", "m.keras", "--out", "o", "x.png"]):
        assert build_parser().parse_args([*command, "--precision", "bfloat16"]).precision == "bfloat16"
        with pytest.warns(UserWarning, match="--precision mixed_float16 is now called float16"):
            assert build_parser().parse_args([*command, "--precision", "mixed_float16"]).precision == "float16"
