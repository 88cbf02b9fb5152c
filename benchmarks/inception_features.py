"""Images per second of the InceptionV3 feature extractor used for FID/KID, on this machine.

    python benchmarks/inception_features.py [--images 64] [--batch-size 16] [--weights FILE]

Without --weights it uses randomly initialised weights (the speed does not depend on them,
and this machine cannot download the ImageNet file). Prints one JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tf_cyclegan.evaluation.fid import InceptionFeatures  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="input image side before the 299 resize")
    parser.add_argument("--weights")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = os.path.join(tmp, "inception_random.weights.h5")
            keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg",
                                           input_shape=(299, 299, 3)).save_weights(weights)
        extractor = InceptionFeatures(weights, batch_size=args.batch_size)
        rng = np.random.default_rng(0)
        images = [rng.uniform(-1, 1, (args.size, args.size, 3)).astype(np.float32) for _ in range(args.images)]
        extractor(images[: args.batch_size])  # warm-up
        start = time.perf_counter()
        features = extractor(images)
        seconds = time.perf_counter() - start
    print(json.dumps({"images": len(features), "batch_size": args.batch_size,
                      "images_per_s": round(len(features) / seconds, 2)}))


if __name__ == "__main__":
    main()
