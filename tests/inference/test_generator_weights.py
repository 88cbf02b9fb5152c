"""Which generators a model translates with: the averaged ones where it keeps them (`ema_decay`),
the trained ones on request, in `load_translator`, `export_model` and the command line."""

import json
import logging

import numpy as np
import pytest
from conftest import TINY_SIZE, tiny_cyclegan

from tf_cyclegan.cli import main
from tf_cyclegan.inference.export import export_model
from tf_cyclegan.inference.loading import load_translator, load_translators
from tf_cyclegan.inference.translate import translate


@pytest.fixture(scope="module")
def averaged_model(tmp_path_factory):
    """A tiny CycleGAN with averaged generators that differ from its trained ones, saved."""
    root = tmp_path_factory.mktemp("averaged")
    model = tiny_cyclegan(ema_decay=0.99)
    model.compile()
    model.build((None, TINY_SIZE, TINY_SIZE, 3))
    rng = np.random.default_rng(0)
    for weight in model.gen_a2b_ema.weights + model.gen_b2a_ema.weights:
        weight.assign(np.asarray(weight) + rng.normal(0, 0.05, weight.shape).astype("float32"))
    model.save(root / "model.keras")
    return model, root / "model.keras"


def _image():
    return np.random.default_rng(1).uniform(-1, 1, (TINY_SIZE, TINY_SIZE, 3)).astype("float32")


def test_a_keras_model_translates_with_its_averaged_generators_by_default_and_says_so(averaged_model, caplog):
    model, path = averaged_model
    image = _image()
    with caplog.at_level(logging.INFO):
        default = load_translator(path, "a2b").translate(image)
    np.testing.assert_allclose(default, translate(model.gen_a2b_ema, image).numpy(), atol=1e-6)
    assert "with the averaged generator gen_a2b_ema (ema_decay 0.99); --weights raw" in caplog.text
    raw = load_translator(path, "b2a", weights="raw").translate(image)
    np.testing.assert_allclose(raw, translate(model.gen_b2a, image).numpy(), atol=1e-6)
    assert np.abs(raw - load_translator(path, "b2a", weights="averaged").translate(image)).max() > 1e-3
    both = load_translators(path, ("a2b",), weights="raw")
    np.testing.assert_allclose(both["a2b"].translate(image), translate(model.gen_a2b, image).numpy(), atol=1e-6)


def test_averaged_weights_asked_of_a_model_without_them_are_refused_naming_the_way_out(tmp_path):
    plain = tiny_cyclegan()
    plain.build((None, TINY_SIZE, TINY_SIZE, 3))
    plain.save(tmp_path / "plain.keras")
    plain.gen_a2b.save(tmp_path / "lone.keras")
    with pytest.raises(ValueError, match="keeps no averaged generators.*weights='raw'"):
        load_translator(tmp_path / "plain.keras", "a2b", weights="averaged")
    with pytest.raises(ValueError, match="holds one generator, with no averaged copy"):
        load_translator(tmp_path / "lone.keras", "a2b", weights="averaged")
    with pytest.raises(ValueError, match="weights must be one of auto, averaged, raw"):
        load_translator(tmp_path / "plain.keras", "a2b", weights="ema")


@pytest.mark.slow
def test_export_writes_the_averaged_generators_unless_raw_is_asked_and_records_which(averaged_model, tmp_path,
                                                                                       capsys):
    model, path = averaged_model
    image = _image()
    export_model(path, tmp_path / "default", formats=("savedmodel",), directions=("a2b",))
    metadata = json.loads((tmp_path / "default" / "a2b" / "metadata.json").read_text())
    assert (metadata["weights"], metadata["ema_decay"]) == ("averaged", 0.99)
    exported = load_translator(tmp_path / "default", "a2b")
    np.testing.assert_allclose(exported.translate(image), translate(model.gen_a2b_ema, image).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="an export, which holds the generator it was exported with"):
        load_translator(tmp_path / "default", "a2b", weights="raw")

    assert main(["export", str(path), "--formats", "savedmodel", "--directions", "a2b", "--weights", "raw",
                 "--out", str(tmp_path / "raw")]) in (0, None)
    metadata = json.loads((tmp_path / "raw" / "a2b" / "metadata.json").read_text())
    assert metadata["weights"] == "raw"
    exported = load_translator(tmp_path / "raw", "a2b")
    np.testing.assert_allclose(exported.translate(image), translate(model.gen_a2b, image).numpy(), atol=1e-5)
