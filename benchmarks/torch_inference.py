"""The PyTorch reference generator's per-image CPU latency, float32 and bfloat16 autocast.

    /path/to/venv-with-torch/bin/python benchmarks/torch_inference.py --size 256 --runs 8

Runs in an environment that has torch (never this package's): `benchmarks/inference.py
--torch-python` starts it. The network is `resnet_generator()` of `benchmarks/torch_reference.py`
(the reference's resnet_9blocks), weights drawn as the reference initialises them. Times
eager inference (`torch.inference_mode`, the way the reference's test script runs) on one
image of a smooth random scene, median of `--runs` after 3 warm-up runs; bfloat16 is
`torch.autocast("cpu", torch.bfloat16)`. Prints one JSON line: ms per path and the
bfloat16 output's PSNR against the float32 output of the same weights.
"""

import argparse
import importlib.util
import json
import os
import statistics
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--num-residual-blocks", type=int, default=9)
    parser.add_argument("--no-bfloat16", action="store_true",
                        help="float32 only (a CPU without bfloat16 instructions emulates it, minutes per image)")
    parser.add_argument("--reference", default=os.path.join(HERE, "torch_reference.py"))
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("torch_reference", args.reference)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)

    torch.manual_seed(0)
    net = reference.resnet_generator(filters=args.filters, num_residual_blocks=args.num_residual_blocks)
    net.apply(reference.paper_init)
    net.eval()
    y, x = np.mgrid[:args.size, :args.size] / args.size
    rng = np.random.default_rng(0)
    scene = np.stack([np.sin(rng.uniform(2, 9) * x + rng.uniform(0, 6)) * np.cos(rng.uniform(2, 9) * y)
                      for _ in range(3)])
    image = torch.tensor(0.9 * scene[None], dtype=torch.float32)

    def timed(run):
        for _ in range(3):
            out = run()
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            out = run()
            times.append(1000 * (time.perf_counter() - start))
        return statistics.median(times), out.float().numpy()

    with torch.inference_mode():
        ms32, out32 = timed(lambda: net(image))

        def bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(image)

        ms = {"PyTorch eager float32": round(ms32, 2)}
        mse = None
        if not args.no_bfloat16:
            ms16, out16 = timed(bf16)
            ms["PyTorch eager bfloat16 autocast"] = round(ms16, 2)
            mse = float(np.mean(((out16 - out32) / 2) ** 2))
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "size": args.size, "ms": ms,
        "psnr_bfloat16_vs_float32": round(10 * np.log10(1 / mse), 2) if mse else None,
    }))


if __name__ == "__main__":
    main()
