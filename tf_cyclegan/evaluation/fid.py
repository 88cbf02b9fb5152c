"""FID and KID: distances between feature distributions of generated and real images.

FID (Heusel et al. 2017, https://arxiv.org/abs/1706.08500) is the Frechet distance between
Gaussians fitted to InceptionV3 pool features. KID (Binkowski et al. 2018,
https://arxiv.org/abs/1801.01401) is the unbiased MMD^2 estimate with the cubic polynomial
kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets; unlike FID it is unbiased
for small test sets, which CycleGAN test sets are.
"""

import numpy as np


def _sqrt_psd(matrix):
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2).

    Tr((S1 S2)^1/2) is computed as the trace of (S1^1/2 S2 S1^1/2)^1/2, a symmetric PSD
    matrix, through eigendecompositions: stable for near-singular covariances (fewer
    images than feature dimensions), where `scipy.linalg.sqrtm` returns complex noise.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(distance, 0.0))


def fid_from_features(features1, features2):
    """FID between two (N, D) feature arrays (N >= 2 each)."""
    features1, features2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    for features in (features1, features2):
        if features.ndim != 2 or len(features) < 2:
            raise ValueError(f"FID needs at least 2 feature vectors per set. Received shape {features.shape}")
    return frechet_distance(features1.mean(0), np.cov(features1, rowvar=False),
                            features2.mean(0), np.cov(features2, rowvar=False))


def polynomial_mmd2(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (diagonal terms excluded)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, dim = len(x), len(y), x.shape[1]
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
                 + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2 * k_xy.mean())


def kid_from_features(features1, features2, num_subsets=100, subset_size=1000, seed=0):
    """KID mean and standard deviation over `num_subsets` random subsets of equal size."""
    features1, features2 = np.asarray(features1), np.asarray(features2)
    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images per set. Received {len(features1)} and {len(features2)}")
    rng = np.random.default_rng(seed)
    values = [
        polynomial_mmd2(features1[rng.choice(len(features1), size, replace=False)],
                        features2[rng.choice(len(features2), size, replace=False)])
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


# Keras' own address and checksum for InceptionV3(include_top=False, weights="imagenet")
# (keras/src/applications/inception_v3.py): fetched here, so that a failed download is ours to report.
IMAGENET_WEIGHTS = ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                    "bcbd6486424b2319ff4ef7d526e38f63")
OFFLINE_HINT = ("run without FID and KID (evaluate --no-fid; eval.inception_weights=null in training), or give a "
                "local InceptionV3 weights file (--inception-weights FILE; eval.inception_weights=FILE)")


def imagenet_weights_file():
    """The local path of the ImageNet InceptionV3 weights, downloaded into the Keras cache on
    first use. Without internet (or with the download failing) raises `ValueError` in one line
    saying what to do, instead of the download's traceback."""
    import keras

    name, url, file_hash = IMAGENET_WEIGHTS
    try:
        return keras.utils.get_file(name, url, cache_subdir="models", file_hash=file_hash)
    except Exception as error:  # noqa: BLE001 - get_file raises a bare Exception for URLError and HTTPError
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"Cannot download the InceptionV3 weights that FID and KID need ({reason}): "
                         f"{OFFLINE_HINT}") from None


class InceptionFeatures:
    """InceptionV3 2048-d pool features of [-1, 1] images, resized to 299x299 (antialiased bilinear).

    Args:
        weights: "imagenet" (downloaded once into the Keras cache, needs internet: offline,
            a `ValueError` saying what to do, see `imagenet_weights_file`) or the path of a
            local weights file for `InceptionV3(include_top=False, pooling="avg")`.
        batch_size: images per forward pass.
    """

    def __init__(self, weights="imagenet", batch_size=16):
        import keras

        if weights != "imagenet" and not __import__("os").path.isfile(weights):
            raise FileNotFoundError(f"Inception weights file not found: {weights!r}")
        if weights == "imagenet":
            weights = imagenet_weights_file()
        try:
            self.model = keras.applications.InceptionV3(
                weights=weights, include_top=False, pooling="avg", input_shape=(299, 299, 3))
        except (OSError, ValueError) as error:  # a corrupt, truncated or mismatched file; no download
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"Cannot load the Inception weights {weights!r}: {reason}") from None
        self.batch_size = batch_size

    def __call__(self, images):
        """(N, H, W, 3) or a list of (H, W, 3) [-1, 1] images of any sizes -> (N, 2048) float64."""
        import tensorflow as tf

        features = []
        for start in range(0, len(images), self.batch_size):
            batch = [tf.image.resize(np.asarray(image, np.float32), (299, 299), method="bilinear",
                                     antialias=True) for image in images[start:start + self.batch_size]]
            # InceptionV3 expects [-1, 1], which is already our images' range.
            features.append(np.asarray(self.model(tf.stack(batch), training=False), np.float64))
        return np.concatenate(features) if features else np.zeros((0, 2048))
