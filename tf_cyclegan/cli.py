"""`tf-cyclegan`: a thin command line over the library."""

import argparse
import logging
import os
import sys
import time


def _train(args):
    from tf_cyclegan.config import load_config
    from tf_cyclegan.train import train_and_evaluate

    config = load_config(args.config, sets=args.set)
    if args.run_dir:
        run_dir = args.run_dir
    else:
        stem = os.path.splitext(os.path.basename(args.config))[0] if args.config else "run"
        run_dir = os.path.join("runs", f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.time()
    result = train_and_evaluate(config, run_dir)
    print(f"\nTraining took {time.time() - started:.0f} s. Results are in {run_dir}/ "
          "(model.keras, samples/, logs/ for TensorBoard, results.json)")
    paired = result.get("paired_test")
    if paired:
        print(
            f"Translation error on the {paired['images']} paired test images (A->B, pixels in [0, 1]):\n"
            f"  model     MAE {paired['model']['mae']:.4f}  PSNR {paired['model']['psnr']:.2f} dB\n"
            f"  baseline  MAE {paired['baseline']['mae']:.4f}  PSNR {paired['baseline']['psnr']:.2f} dB"
            f"  (untranslated input)\n"
            f"  the model's error is {paired['error_ratio']:.2f}x the baseline's"
        )


def _make_demo_data(args):
    from tf_cyclegan.synthetic import make_demo_data

    written = make_demo_data(args.out, num_train=args.num_train, num_test=args.num_test,
                             size=args.size, seed=args.seed)
    counts = ", ".join(f"{split}: {len(paths)}" for split, paths in written.items())
    print(f"Wrote the synthetic dataset to {args.out}/ ({counts})")


def build_parser():
    parser = argparse.ArgumentParser(prog="tf-cyclegan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a CycleGAN from a config")
    train.add_argument("--config", help="YAML file of overrides of the paper's defaults")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", default=[],
                       help="override one config value (repeatable)")
    train.add_argument("--run-dir", help="where the run's files go (default: runs/<config>-<time>)")
    train.set_defaults(func=_train)

    demo = commands.add_parser("make-demo-data", help="write the synthetic dataset")
    demo.add_argument("out", help="output folder")
    demo.add_argument("--num-train", type=int, default=200)
    demo.add_argument("--num-test", type=int, default=20)
    demo.add_argument("--size", type=int, default=72)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_make_demo_data)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_cyclegan.config import ConfigError

    try:
        args.func(args)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"tf-cyclegan {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
