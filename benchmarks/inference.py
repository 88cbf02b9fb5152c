"""Per-image CPU latency and accuracy of every inference path, ours and PyTorch's, in one table.

    python benchmarks/inference.py [--size 256] [--runs 8] [--torch-python /path/to/venv/bin/python]
    python benchmarks/inference.py --tiled 4000x3000 [--precisions float32,bfloat16]

Exports one ResNet generator (random weights drawn as in training: latency does not depend
on their values) to SavedModel, TFLite float32/float16/int8 (dynamic range)/int8_full
(calibrated on 16 synthetic scenes) and ONNX in a temporary folder, then times one image of
`--size` through: Keras at each precision (`with_precision`), the SavedModel's float
signatures, LiteRT (XNNPACK, all cores) and ONNX Runtime; median of `--runs` after 3
warm-up runs (a path is cut short after `--budget-s` seconds of timing). Each path's PSNR is
against our float32 Keras output on the same smooth scene. With `--torch-python`, the
PyTorch reference generator (`benchmarks/torch_inference.py`, float32 and bfloat16
autocast) runs in that environment before and after ours, and its median is shown; its
PSNR is its bfloat16 output against its own float32 output.

`--tiled WxH`: a W x H photograph through `KerasTranslator` (512 px tiles, 64 px overlap)
at each of `--precisions`, each in a fresh process: seconds and peak resident memory.
Prints a Markdown table and one JSON line.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402


def scene(size, seed=0):
    """A smooth random colour scene in [-1, 1], (1, size, size, 3)."""
    y, x = np.mgrid[:size, :size] / size
    rng = np.random.default_rng(seed)
    image = np.stack([np.sin(rng.uniform(2, 9) * x + rng.uniform(0, 6)) * np.cos(rng.uniform(2, 9) * y)
                      for _ in range(3)], axis=-1)
    return (0.9 * image[None]).astype(np.float32)


def median_ms(fn, image, runs, budget_s):
    for _ in range(3):
        out = fn(image)
    times = []
    while len(times) < runs and (len(times) < 2 or sum(times) < 1000 * budget_s):
        start = time.perf_counter()
        out = fn(image)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), len(times), np.asarray(out, np.float32)


def psnr(output, reference):
    mse = float(np.mean(((np.asarray(output, np.float64) - reference) / 2.0) ** 2))
    return 100.0 if mse <= 1e-20 else 10 * np.log10(1.0 / mse)


def _folder_mb(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20
    return os.path.getsize(path) / 2**20


def _torch(args):
    command = [args.torch_python, os.path.join(HERE, "torch_inference.py"), "--size", str(args.size),
               "--runs", str(args.runs), "--filters", str(args.filters),
               "--num-residual-blocks", str(args.num_residual_blocks)]
    if "bfloat16" not in args.precisions.split(","):
        command.append("--no-bfloat16")
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def ours(args):
    import keras
    import tensorflow as tf

    from tf_cyclegan import build_resnet_generator
    from tf_cyclegan.inference.export import export_generator
    from tf_cyclegan.inference.loading import OnnxTranslator, SavedModelTranslator, TFLiteTranslator
    from tf_cyclegan.inference.precision import with_precision
    from tf_cyclegan.inference.translate import translate

    keras.utils.set_random_seed(0)
    generator = build_resnet_generator(filters=args.filters, num_residual_blocks=args.num_residual_blocks)
    image = scene(args.size)
    reference = translate(generator, image).numpy()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        calibration = os.path.join(out, "calibration")
        os.makedirs(calibration)
        for i in range(16):
            tf.io.write_file(os.path.join(calibration, f"{i}.png"),
                             tf.io.encode_png(tf.cast(127.5 * (scene(args.size, seed=100 + i)[0] + 1), tf.uint8)))
        export_generator(generator, os.path.join(out, "export"), formats=("savedmodel", "tflite", "onnx"),
                         tflite_size=args.size, calibration=calibration)
        exported = os.path.join(out, "export")
        runners = {}
        for precision in args.precisions.split(","):
            reduced = with_precision(generator, precision)
            runners[f"ours: Keras {precision}"] = (lambda x, g=reduced: translate(g, x).numpy(), None)
        runners["ours: Keras predict float32"] = (lambda x: generator.predict(x, verbose=0), None)
        for precision in args.precisions.split(","):
            runners[f"ours: SavedModel {precision}"] = (
                SavedModelTranslator(os.path.join(exported, "savedmodel"), precision=precision).run,
                os.path.join(exported, "savedmodel"))
        for variant in ("float32", "float16", "int8", "int8_full"):
            path = os.path.join(exported, f"generator_{variant}.tflite")
            runners[f"ours: TFLite {variant}"] = (TFLiteTranslator(path).run, path)
        runners["ours: ONNX Runtime float32"] = (OnnxTranslator(os.path.join(exported, "generator.onnx")).run,
                                                 os.path.join(exported, "generator.onnx"))
        for name, (run, path) in runners.items():
            ms, runs, output = median_ms(run, image, args.runs, args.budget_s)
            rows.append({"path": name, "ms": ms, "runs": runs, "psnr": psnr(output, reference),
                         "mb": _folder_mb(path) if path else None})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def tiled_one(args):
    """One precision through a big image in this process: seconds and peak RSS."""
    import keras

    from tf_cyclegan import build_resnet_generator
    from tf_cyclegan.inference.loading import KerasTranslator

    width, height = (int(v) for v in args.tiled.lower().split("x"))
    keras.utils.set_random_seed(0)
    generator = build_resnet_generator(filters=args.filters, num_residual_blocks=args.num_residual_blocks)
    translator = KerasTranslator(generator, precision=args.tiled_one, tile=512, overlap=64)
    photo = scene(1024)[0]
    photo = np.tile(photo, (height // 1024 + 1, width // 1024 + 1, 1))[:height, :width]
    start = time.perf_counter()
    out = translator.translate(photo)
    seconds = time.perf_counter() - start
    assert out.shape == photo.shape
    print(json.dumps({"precision": args.tiled_one, "image": f"{width}x{height}", "seconds": round(seconds, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return names[0] if names else platform.machine()
    except OSError:
        return platform.processor() or platform.machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--budget-s", type=float, default=60.0, help="stop timing a path after this many seconds")
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--num-residual-blocks", type=int, default=9)
    parser.add_argument("--precisions", default="float32,bfloat16,float16")
    parser.add_argument("--torch-python", help="a Python with torch installed: run the PyTorch reference too")
    parser.add_argument("--tiled", metavar="WxH", help="time a WxH photograph, tiled, at each precision instead")
    parser.add_argument("--tiled-one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.tiled_one:
        tiled_one(args)
        return
    machine = f"{_cpu_name()}, {os.cpu_count()} cores"
    if args.tiled:
        results = []
        for precision in args.precisions.split(","):
            done = subprocess.run([sys.executable, __file__, "--tiled", args.tiled, "--tiled-one", precision,
                                   "--filters", str(args.filters), "--num-residual-blocks",
                                   str(args.num_residual_blocks)], capture_output=True, text=True)
            if done.returncode:
                sys.exit(done.stderr[-2000:])
            results.append(json.loads(done.stdout.splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
        print(f"\n{machine}; {args.tiled} photograph, 512 px tiles, 64 px overlap\n")
        print("| precision | seconds | peak RSS MB |\n|---|---:|---:|")
        for r in results:
            print(f"| {r['precision']} | {r['seconds']} | {r['peak_rss_mb']} |")
        return

    torch_runs = [_torch(args)] if args.torch_python else []
    rows = ours(args)
    if args.torch_python:
        torch_runs.append(_torch(args))
        for name in torch_runs[0]["ms"]:
            rows.insert(len([r for r in rows if r["path"].startswith("PyTorch")]), {
                "path": name, "ms": statistics.median(run["ms"][name] for run in torch_runs), "runs": args.runs,
                "psnr": 100.0 if "float32" in name else torch_runs[-1]["psnr_bfloat16_vs_float32"], "mb": None})
    ours_float32 = next(r["ms"] for r in rows if r["path"] == "ours: Keras float32")
    print(f"\n{machine}; generator {args.filters} filters, {args.num_residual_blocks} residual blocks, "
          f"{args.size}x{args.size}, median of up to {args.runs}"
          + (f"; PyTorch {torch_runs[0]['torch']} ({torch_runs[0]['threads']} threads), median of its two runs "
             "before and after ours" if torch_runs else "") + "\n")
    print("| path | ms / image | vs ours Keras float32 | PSNR dB vs float32 | file MB |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        mb = "" if row["mb"] is None else f"{row['mb']:.1f}"
        quality = "exact" if row["psnr"] >= 100 else f"{row['psnr']:.1f}"
        print(f"| {row['path']} | {row['ms']:.0f} | {ours_float32 / row['ms']:.2f}x | {quality} | {mb} |")
    print("\n" + json.dumps({"size": args.size, "machine": machine,
                             "ms": {r["path"]: round(r["ms"], 1) for r in rows},
                             "psnr": {r["path"]: round(r["psnr"], 2) for r in rows}}))


if __name__ == "__main__":
    main()
