import keras
import numpy as np
import pytest

from tf_cyclegan.data.images import list_images, load_image
from tf_cyclegan.data.synthetic import restyle
from tf_cyclegan.evaluation.evaluate import evaluate, format_report
from tf_cyclegan.inference.loading import KerasTranslator


def _identity():
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def _mean_features(images):
    """A cheap stand-in for Inception: per-image channel means and stds (enough for FID maths)."""
    return np.array([np.concatenate([im.mean((0, 1)), im.std((0, 1))]) for im in images])


def test_do_nothing_translators_score_the_baseline_and_perfect_cycles(demo_root):
    translators = {"a2b": KerasTranslator(_identity()), "b2a": KerasTranslator(_identity())}
    report = evaluate(translators, demo_root, features=_mean_features, kid_subsets=5, progress=False)
    a2b = report["a2b"]
    assert a2b["images"] == 3 and a2b["cycle_l1"] == 0.0
    assert a2b["paired"] == pytest.approx(a2b["baseline"])
    # The baseline's MAE computed directly.
    maes = []
    for path in list_images(demo_root / "testA"):
        real = np.round((load_image(path).numpy() + 1) * 127.5).astype(np.uint8)
        maes.append(np.abs(real.astype(float) - restyle(real).astype(float)).mean() / 255)
    assert a2b["baseline"]["mae"] == pytest.approx(np.mean(maes), rel=1e-6)
    assert 0 < a2b["baseline"]["ssim"] < 1
    assert a2b["fid"] > 0 and "kid" in a2b and "paired" not in report["b2a"]
    assert "baseline (untranslated)" in format_report(report)


class _Constant:
    """A translator that returns a grey image of the input's size."""

    def translate(self, image):
        return np.zeros_like(image)


def test_max_images_directions_and_missing_generators(demo_root):
    report = evaluate({"a2b": _Constant()}, demo_root, directions=("a2b",), max_images=2)
    assert set(report) == {"a2b"} and report["a2b"]["images"] == 2
    assert "cycle_l1" not in report["a2b"] and "fid" not in report["a2b"]  # no b2a to cycle back; no features
    assert report["a2b"]["paired"]["mae"] > 0 and "baseline" in report["a2b"]
    with pytest.raises(ValueError, match="No b2a generator"):
        evaluate({"a2b": _Constant()}, demo_root)


def test_format_report_shows_a_dash_for_what_was_not_measured():
    report = {"a2b": {"images": 3, "cycle_l1": 0.25},
              "b2a": {"images": 2, "fid": 12.5, "kid": {"mean": 2e-3, "std": 1e-4}}}
    header, a2b, b2a = format_report(report).splitlines()
    assert header.split() == ["images", "FID", "KID", "x1e3", "cycle", "L1"]
    assert a2b.split() == ["a2b", "3", "-", "-", "0.2500"]
    assert b2a.split() == ["b2a", "2", "12.50", "2.00", "±", "0.10", "-"]


def test_a_lone_generator_is_evaluated_one_way_without_a_cycle_error(demo_root):
    translators = {"a2b": KerasTranslator(_identity())}
    report = evaluate(translators, demo_root, directions=("a2b",), progress=False)
    assert set(report) == {"a2b"} and "cycle_l1" not in report["a2b"]  # no inverse to cycle back through
    assert report["a2b"]["paired"] == pytest.approx(report["a2b"]["baseline"])
    assert "b2a" not in format_report(report)
    with pytest.raises(ValueError, match="No b2a generator in the model given: it has a2b"):
        evaluate(translators, demo_root, directions=("a2b", "b2a"), progress=False)
