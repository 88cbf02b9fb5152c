import json

import keras
import numpy as np
import pytest
from conftest import tiny_cyclegan

from tf_cyclegan.cli import main
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


def test_evaluate_command_writes_json(demo_root, tmp_path, capsys):
    model = tiny_cyclegan()
    model.compile()
    model.build((None, 32, 32, 3))
    model.save(tmp_path / "model.keras")
    out = tmp_path / "report.json"
    code = main(["evaluate", "--model", str(tmp_path / "model.keras"), "--data", str(demo_root),
                 "--no-fid", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report) == {"a2b", "b2a"} and report["a2b"]["cycle_l1"] > 0
    assert {"mae", "psnr", "ssim"} <= set(report["a2b"]["paired"])
    assert "cycle L1" in capsys.readouterr().out
