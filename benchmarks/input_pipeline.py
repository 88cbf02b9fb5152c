"""Images per second of the `tf.data` input pipeline alone: decode, resize 286, crop 256, flip.

    python benchmarks/input_pipeline.py [--images 200] [--size 400] [--epochs 3] [--no-cache]

Writes a folder of random-content JPEGs of --size pixels per domain into a temporary folder,
then iterates `make_unpaired_dataset` over it. With the cache (default) every image is
decoded and resized once when the dataset is made (`setup_s`), and epochs then only crop,
flip and convert; with --no-cache every epoch decodes. Prints one JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_cyclegan.data.unpaired import make_unpaired_dataset  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        for domain in ("trainA", "trainB"):
            os.makedirs(os.path.join(root, domain))
            for i in range(args.images):
                smooth = rng.integers(0, 256, (args.size // 8, args.size // 8, 3)).astype(np.float32)
                image = tf.cast(tf.image.resize(smooth, (args.size, args.size)), tf.uint8)
                tf.io.write_file(os.path.join(root, domain, f"{i}.jpg"), tf.io.encode_jpeg(image, quality=90))
        start = time.perf_counter()
        dataset = make_unpaired_dataset(os.path.join(root, "trainA"), os.path.join(root, "trainB"),
                                        load_size=286, crop_size=256, cache=not args.no_cache)
        setup_s = time.perf_counter() - start
        rates = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            pairs = sum(1 for _ in dataset)
            rates.append(pairs / (time.perf_counter() - start))
    print(json.dumps({"pairs_per_epoch": pairs, "cache": not args.no_cache, "setup_s": round(setup_s, 2),
                      "pairs_per_s_by_epoch": [round(r, 1) for r in rates],
                      "images_per_s_steady": round(2 * rates[-1], 1)}))


if __name__ == "__main__":
    main()
