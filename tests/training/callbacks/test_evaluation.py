import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_cyclegan

from tf_cyclegan.evaluation.evaluate import evaluate
from tf_cyclegan.inference.loading import KerasTranslator
from tf_cyclegan.training.callbacks.evaluation import EvaluationCallback


@pytest.fixture(scope="module")
def model():
    model = tiny_cyclegan()
    model.build((1, 32, 32, 3))
    return model


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir / "eval"), size_guidance={"tensors": 0}).Reload()
    return {tag: [(event.step, float(tf.make_ndarray(event.tensor_proto))) for event in events.Tensors(tag)]
            for tag in events.Tags()["tensors"]}


def test_scalars_are_written_on_due_epochs_only(model, demo_root, tmp_path):
    callback = EvaluationCallback(str(demo_root), every_n_epochs=2, log_dir=str(tmp_path), max_images=2)
    callback.set_model(model)
    for epoch in range(5):
        callback.on_epoch_end(epoch)
    scalars = _scalars(tmp_path)
    # No features: no FID/KID; the paired figures for a2b only (testB_paired/ is its ground truth).
    assert set(scalars) == {"eval/a2b/cycle_l1", "eval/b2a/cycle_l1", "eval/a2b/paired_mae",
                            "eval/a2b/paired_psnr", "eval/a2b/paired_ssim"}
    for tag, values in scalars.items():
        assert [step for step, _ in values] == [2, 4], tag  # epochs 2 and 4 (counted from 1) of 5
    # The figures are those of `evaluate` on the model's own generators, on the first 2 images.
    translators = {"a2b": KerasTranslator(model.gen_a2b), "b2a": KerasTranslator(model.gen_b2a)}
    report = evaluate(translators, str(demo_root), max_images=2)
    assert report["a2b"]["images"] == 2
    np.testing.assert_allclose(scalars["eval/b2a/cycle_l1"][0][1], report["b2a"]["cycle_l1"], rtol=1e-5)
    np.testing.assert_allclose(scalars["eval/a2b/paired_mae"][1][1], report["a2b"]["paired"]["mae"], rtol=1e-5)


def test_fid_and_kid_are_logged_with_features_and_nothing_is_written_without_a_log_dir(model, demo_root, tmp_path):
    def mean_features(images):  # a cheap stand-in for Inception
        return np.array([np.concatenate([im.mean((0, 1)), im.std((0, 1))]) for im in images])

    callback = EvaluationCallback(str(demo_root), every_n_epochs=1, log_dir=str(tmp_path / "logs"),
                                  features=mean_features)
    callback.set_model(model)
    callback.on_epoch_end(0)
    scalars = _scalars(tmp_path / "logs")
    assert {"eval/a2b/fid", "eval/a2b/kid", "eval/b2a/fid", "eval/b2a/kid"} <= set(scalars)
    assert scalars["eval/a2b/fid"][0][0] == 1 and scalars["eval/a2b/fid"][0][1] > 0
    quiet = EvaluationCallback(str(demo_root), every_n_epochs=1, log_dir=None, max_images=1)
    quiet.set_model(model)
    quiet.on_epoch_end(0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]
