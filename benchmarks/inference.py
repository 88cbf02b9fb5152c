"""Per-image CPU latency of every inference path at one size, and the exported file sizes.

    python benchmarks/inference.py [--size 256] [--runs 20] [--filters 64 --num-residual-blocks 9]

Exports one ResNet generator (random weights: latency does not depend on their values)
to SavedModel, TFLite float32/float16/int8 and ONNX in a temporary folder, then times a
single image through Keras `predict`, a direct Keras call, the SavedModel's float
signature, LiteRT (XNNPACK, the interpreter's default CPU delegate) and ONNX Runtime.
Prints a Markdown table and one JSON line.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_cyclegan import build_resnet_generator  # noqa: E402
from tf_cyclegan.inference.export import export_generator  # noqa: E402
from tf_cyclegan.inference.loading import OnnxTranslator, SavedModelTranslator, TFLiteTranslator  # noqa: E402


def median_ms(fn, image, runs, warmup=3):
    for _ in range(warmup):
        fn(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(image)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--num-residual-blocks", type=int, default=9)
    args = parser.parse_args()

    generator = build_resnet_generator(filters=args.filters, num_residual_blocks=args.num_residual_blocks)
    image = np.random.default_rng(0).uniform(-1, 1, (1, args.size, args.size, 3)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        export_generator(generator, out, formats=("savedmodel", "tflite", "onnx"), tflite_size=args.size)
        paths = {
            "SavedModel": os.path.join(out, "savedmodel"),
            "TFLite float32": os.path.join(out, "generator_float32.tflite"),
            "TFLite float16": os.path.join(out, "generator_float16.tflite"),
            "TFLite int8": os.path.join(out, "generator_int8.tflite"),
            "ONNX": os.path.join(out, "generator.onnx"),
        }
        runners = {
            "Keras predict": lambda x: generator.predict(x, verbose=0),
            "Keras call": lambda x: generator(x, training=False),
            "SavedModel": SavedModelTranslator(paths["SavedModel"]).run,
            "TFLite float32": TFLiteTranslator(paths["TFLite float32"]).run,
            "TFLite float16": TFLiteTranslator(paths["TFLite float16"]).run,
            "TFLite int8": TFLiteTranslator(paths["TFLite int8"]).run,
            "ONNX": OnnxTranslator(paths["ONNX"]).run,
        }
        for name, run in runners.items():
            path = paths.get(name)
            if path is None:
                size = None
            elif os.path.isdir(path):
                size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
            else:
                size = os.path.getsize(path)
            rows.append({"path": name, "ms": median_ms(run, image, args.runs),
                         "mb": None if size is None else size / 2**20})

    keras_ms = rows[0]["ms"]
    fastest = min(rows, key=lambda row: row["ms"])
    sizes = {row["path"]: row["mb"] for row in rows if row["mb"]}
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores; TF {tf.__version__}, "
          f"Keras {keras.__version__}; generator {args.filters} filters, {args.num_residual_blocks} residual blocks, "
          f"{args.size}x{args.size}, median of {args.runs}\n")
    print("| path | ms / image | vs Keras predict | file MB |")
    print("|---|---:|---:|---:|")
    for row in rows:
        mb = "" if row["mb"] is None else f"{row['mb']:.1f}"
        print(f"| {row['path']} | {row['ms']:.1f} | {keras_ms / row['ms']:.2f}x | {mb} |")
    summary = {
        "size": args.size, "ms": {row["path"]: round(row["ms"], 2) for row in rows},
        "mb": {k: round(v, 2) for k, v in sizes.items()},
        "fastest": fastest["path"], "fastest_speedup_vs_keras_predict": round(keras_ms / fastest["ms"], 2),
        "int8_over_float32_size": round(sizes["TFLite int8"] / sizes["TFLite float32"], 3),
    }
    print("\n" + json.dumps(summary))


if __name__ == "__main__":
    main()
