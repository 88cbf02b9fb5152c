import numpy as np
import pytest
import scipy.linalg

from tf_cyclegan.evaluation.fid import (
    IMAGENET_WEIGHTS,
    InceptionFeatures,
    fid_from_features,
    frechet_distance,
    imagenet_weights_file,
    kid_from_features,
    polynomial_mmd2,
)


def _scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)


def test_frechet_distance_matches_a_direct_scipy_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(1.0, 2.0, size=(400, 8))
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-6)


def test_near_singular_covariances():
    rng = np.random.default_rng(1)
    # 10 samples in 32 dimensions: both covariances have rank 9.
    a, b = rng.normal(size=(10, 32)), rng.normal(0.5, 1.0, size=(10, 32))
    ours = fid_from_features(a, b)
    reference = _scipy_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert np.isfinite(ours) and ours == pytest.approx(reference, rel=1e-3)


def test_fid_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(2).normal(size=(50, 64))
    assert fid_from_features(features, features) == pytest.approx(0.0, abs=1e-6)


def test_kid_matches_a_brute_force_formula():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 5)), rng.normal(0.3, 1.0, size=(7, 5))

    def k(a, b):
        return (a @ b / 5 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / (6 * 5)
    yy = sum(k(y[i], y[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    xy = sum(k(x[i], y[j]) for i in range(6) for j in range(7)) / (6 * 7)
    assert polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    # With both sets of the subset size every subset is a permutation: KID is the MMD itself.
    mean, std = kid_from_features(x, y[:6], num_subsets=5, subset_size=100)
    assert mean == pytest.approx(polynomial_mmd2(x, y[:6]), rel=1e-10) and std == pytest.approx(0, abs=1e-12)
    # Same distribution: near zero, far below a shifted one.
    same, shifted = rng.normal(size=(400, 5)), rng.normal(1.0, 1.0, size=(200, 5))
    kid_same = kid_from_features(same[:200], same[200:], num_subsets=20, subset_size=200)[0]
    kid_shifted = kid_from_features(same[:200], shifted, num_subsets=20, subset_size=200)[0]
    assert abs(kid_same) < 0.1 * kid_shifted


@pytest.mark.slow
def test_inception_features_from_a_local_weights_file(tmp_path):
    import keras

    model = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg",
                                           input_shape=(299, 299, 3))
    path = str(tmp_path / "inception.weights.h5")
    model.save_weights(path)
    extractor = InceptionFeatures(weights=path, batch_size=2)
    rng = np.random.default_rng(4)
    images = [rng.uniform(-1, 1, (40, 56, 3)).astype(np.float32) for _ in range(3)]  # 3 = 2 + 1
    features = extractor(images)
    assert features.shape == (3, 2048) and features.dtype == np.float64
    single = extractor(images[2:])
    np.testing.assert_allclose(features[2], single[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        InceptionFeatures(weights=str(tmp_path / "missing.h5"))


def test_offline_the_imagenet_weights_are_one_line_saying_what_to_do(monkeypatch):
    import keras

    calls = []

    def no_network(fname, origin, **kwargs):  # what keras.utils.get_file raises for a URLError
        calls.append(origin)
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(ValueError) as error:
        InceptionFeatures("imagenet")
    message = str(error.value)
    assert "\n" not in message and calls == [IMAGENET_WEIGHTS[1]]
    assert message.startswith("Cannot download the InceptionV3 weights that FID and KID need (URL fetch failure")
    for hint in ("--no-fid", "--inception-weights FILE", "eval.inception_weights"):
        assert hint in message, hint


def test_the_imagenet_weights_are_fetched_with_keras_own_address_and_checksum(monkeypatch):
    import keras

    seen = {}

    def cached(fname, origin, **kwargs):
        seen.update(kwargs, fname=fname, origin=origin)
        return "/cache/models/" + fname

    monkeypatch.setattr(keras.utils, "get_file", cached)
    assert imagenet_weights_file() == "/cache/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert seen["origin"].endswith(seen["fname"]) and seen["file_hash"] == "bcbd6486424b2319ff4ef7d526e38f63"
    assert seen["cache_subdir"] == "models"  # the file Keras' own InceptionV3(weights="imagenet") would use
