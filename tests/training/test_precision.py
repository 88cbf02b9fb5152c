import pytest

from tf_cyclegan import runtime
from tf_cyclegan.training import precision


def test_explicit_policies_pass_through():
    for name in ("float32", "mixed_float16", "mixed_bfloat16"):
        assert precision.resolve_precision(name) == name


def test_auto_picks_per_device(monkeypatch):
    monkeypatch.setattr(runtime, "has_gpu", lambda: True)
    assert precision.resolve_precision("auto") == "mixed_float16"
    monkeypatch.setattr(runtime, "has_gpu", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    assert precision.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    assert precision.resolve_precision("auto") == "float32"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "with").write_text("flags\t: fpu sse avx2 avx512_bf16 amx_tile\n")
    (tmp_path / "without").write_text("flags\t: fpu sse avx2\n")
    assert precision.cpu_has_bfloat16(tmp_path / "with")
    assert not precision.cpu_has_bfloat16(tmp_path / "without")
    assert not precision.cpu_has_bfloat16(tmp_path / "missing")


def test_bad_policy_is_named():
    with pytest.raises(ValueError, match="'float16'"):
        precision.resolve_precision("float16")
