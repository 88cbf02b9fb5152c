"""`tf-cyclegan`: a thin command line over the library.

The library changes nothing process-wide on import or in `fit`. `train` and `bench` set
TensorFlow's CPU allocator first, before TensorFlow's first op, only when the user asks for
one (`train.cpu_allocator` / `--cpu-allocator`; default: TensorFlow's own).
"""

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import warnings

from tf_cyclegan.choices import (
    ALLOCATORS,
    CPU_SPEEDUPS,
    DIRECTIONS,
    GENERATOR_WEIGHTS,
    MODEL_KINDS,
    OLD_PRECISIONS,
    PRECISIONS,
    UPSAMPLINGS,
)


@contextlib.contextmanager
def _ctrl_c_at_the_next_batch():
    """Yields a Keras callback that makes Ctrl-C during `fit` stop at the end of the running
    batch, after that batch's callbacks (a backup if one is due); a second Ctrl-C, or one
    outside `fit`, raises at once.

    A KeyboardInterrupt raised at an arbitrary point inside `fit` is not reliable: TensorFlow's
    and NumPy's C code can swallow it, or turn it into another error (NumPy reads an object whose
    conversion was interrupted as a scalar), and `fit` then runs on or fails with a misleading
    traceback. So the first Ctrl-C in `fit` only sets a flag that the callback turns into a
    KeyboardInterrupt at a batch's (or epoch's, or the run's) end. Only the command does this:
    it owns its process; the previous handler is put back after.
    """
    import keras

    # Plain flags, not threading.Event: its set() takes a lock, which a second Ctrl-C arriving
    # inside the first one's handler would wait on for ever.
    state = {"in_fit": False, "interrupted": False}

    def on_sigint(signum, frame):
        if state["in_fit"] and not state["interrupted"]:
            state["interrupted"] = True
            _notice("\ntf-cyclegan train: stopping after the running step; Ctrl-C again stops at once\n")
            return
        state["interrupted"] = True
        raise KeyboardInterrupt

    class StopOnCtrlC(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            state["in_fit"] = True

        def on_train_batch_end(self, batch, logs=None):
            self._stop_if_interrupted()

        def on_epoch_end(self, epoch, logs=None):
            self._stop_if_interrupted()

        def on_train_end(self, logs=None):
            state["in_fit"] = False
            self._stop_if_interrupted()

        def _stop_if_interrupted(self):
            if state["interrupted"]:
                state["in_fit"] = False
                raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield StopOnCtrlC()
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield StopOnCtrlC()
    finally:
        signal.signal(signal.SIGINT, previous)


def _precision(text):
    """An argparse `type`: a precision word, version 0.2.0's `mixed_*` words mapped to theirs."""
    if text in OLD_PRECISIONS:
        warnings.warn(f"--precision {text} is now called {OLD_PRECISIONS[text]}", stacklevel=2)
    return OLD_PRECISIONS.get(text, text)


def _add_weights_argument(parser):
    parser.add_argument("--weights", default="auto", choices=GENERATOR_WEIGHTS,
                        help="a .keras model's generators: auto (default) takes the averaged ones where the model "
                             "keeps them (model.ema_decay), else the trained ones; raw: the trained ones")


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad command line reported as one line (no usage block above it), as
    every other error of the command is; `--help` shows the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(check, **limits):
    """An argparse `type`: an int, checked by `check` (`tf_cyclegan.checks.check_int` or
    `check_image_size`, or a `BENCH_CHECKS` entry: one definition for the config, the command
    line and the library), so a bad value is one line naming the option before any work."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer. Received: {text!r}") from None
        try:
            # argparse names the option ("argument --size: ..."); the check's own key is left empty.
            return check("", value, **limits)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error).strip()) from None

    return parse


def _notice(text):
    """Writes `text` to stderr from a signal handler, never raising: an exception there would
    surface at whatever line the main thread was running."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (RuntimeError, AttributeError, ValueError, OSError):  # "reentrant call", no or a closed stderr
        try:
            os.write(2, text.encode())
        except OSError:
            pass


def _train(args):
    from tf_cyclegan.runtime import set_cpu_allocator
    from tf_cyclegan.training.config import load_config

    overrides = {"train": {"init_from": args.init_from}} if args.init_from else None
    config = load_config(args.config, overrides=overrides, sets=args.set)  # a bad key stops here, before TensorFlow
    if args.run_dir:
        run_dir = args.run_dir
    else:
        stem = os.path.splitext(os.path.basename(args.config))[0] if args.config else "run"
        run_dir = os.path.join("runs", f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.time()
    set_cpu_allocator(config.train.cpu_allocator)
    from tf_cyclegan.training.train import train_and_evaluate

    with _ctrl_c_at_the_next_batch() as stop_on_ctrl_c:
        result = train_and_evaluate(config, run_dir, restart=args.restart, callbacks=[stop_on_ctrl_c])
    print(f"\nTraining took {time.time() - started:.0f} s. Results are in {run_dir}/ "
          "(model.keras, samples/, logs/ for TensorBoard, results.json)")
    paired, raw = result.get("paired_test"), result.get("paired_test_raw")
    if paired:
        averaged = "\n" if not raw else (
            f"  (averaged generator)\n  trained   MAE {raw['model']['mae']:.4f}  PSNR {raw['model']['psnr']:.2f} dB"
            "  (the last weights, --weights raw)\n")
        print(
            f"Translation error on the {paired['images']} paired test images (A->B, pixels in [0, 1]):\n"
            f"  model     MAE {paired['model']['mae']:.4f}  PSNR {paired['model']['psnr']:.2f} dB{averaged}"
            f"  baseline  MAE {paired['baseline']['mae']:.4f}  PSNR {paired['baseline']['psnr']:.2f} dB"
            f"  (untranslated input)\n"
            f"  the model's error is {paired['error_ratio']:.2f}x the baseline's"
        )


def bench_kwargs(args):
    """The `train_step_benchmark` arguments of a parsed `bench` command line."""
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    return dict(size=args.size, batch=args.batch, filters=args.filters,
                num_residual_blocks=args.num_residual_blocks, steps=args.steps,
                warmup=args.warmup, precision=args.precision, jit_compile=jit, upsampling=args.upsampling,
                cpu_speedups=args.cpu_speedups, model_kind=args.model_kind)


def run_bench(args, start_time=None):
    """`tf-cyclegan bench`: the allocator chosen first, then `train_step_benchmark`; prints its JSON."""
    import json

    from tf_cyclegan.benchmarking.bench import train_step_benchmark
    from tf_cyclegan.runtime import set_cpu_allocator

    set_cpu_allocator(args.cpu_allocator)
    result = train_step_benchmark(**bench_kwargs(args), start_time=start_time)
    print(json.dumps(result))


def _bench(args):
    run_bench(args)


def _make_demo_data(args):
    from tf_cyclegan.data.synthetic import make_demo_data

    written = make_demo_data(args.out, num_train=args.num_train, num_test=args.num_test,
                             size=args.size, seed=args.seed)
    counts = ", ".join(f"{split}: {len(paths)}" for split, paths in written.items())
    print(f"Wrote the synthetic dataset to {args.out}/ ({counts})")


def _export(args):
    from tf_cyclegan.inference.export import export_model

    written = export_model(args.model, args.out, formats=_split(args.formats), directions=_split(args.directions),
                           tflite_size=args.tflite_size, overwrite=args.overwrite, calibration=args.calibration,
                           weights=args.weights)
    for direction, files in written.items():
        for name, path in files.items():
            print(f"{direction:4s} {name:16s} {path}")


def _translate(args):
    from tf_cyclegan.inference.batch import plan_outputs, translate_paths
    from tf_cyclegan.inference.loading import load_translator

    plan_outputs(args.inputs, args.out, overwrite=args.overwrite)  # every path checked before the model loads
    translator = load_translator(args.model, args.direction, precision=args.precision, tile=args.tile,
                                 weights=args.weights)
    written, skipped = translate_paths(translator, args.inputs, args.out, overwrite=args.overwrite,
                                       progress=sys.stdout.isatty())
    if not written:
        raise ValueError(f"Translated nothing: all {len(skipped)} input(s) were skipped (the warnings above say why)")
    where = os.path.join(args.out, "")  # one trailing separator, whether or not --out had one
    print(f"Translated {len(written)} image(s) into {where}" + (f"; skipped {len(skipped)}" if skipped else ""))


def _evaluate(args):
    from tf_cyclegan.evaluation.evaluate import evaluate, format_report
    from tf_cyclegan.evaluation.fid import InceptionFeatures
    from tf_cyclegan.files import OutputExists, refuse_existing, write_json
    from tf_cyclegan.inference.loading import load_translators, model_directions

    if args.out and os.path.isdir(args.out):
        raise OutputExists(f"--out {args.out!r} is a folder: give the report's file name")
    if args.out and not args.overwrite:
        refuse_existing([args.out])
    directions = (args.direction,)
    if args.direction == "both":
        directions = model_directions(args.model)
        if len(directions) == 1:  # a lone generator: nothing to cycle back through
            print(f"tf-cyclegan evaluate: {args.model} has only the {directions[0]} generator: evaluating "
                  f"{directions[0]} alone, without a cycle error", file=sys.stderr)
    translators = load_translators(args.model, directions, weights=args.weights)  # a direction it lacks: one line
    features = None if args.no_fid else InceptionFeatures(args.inception_weights)  # offline: one line
    report = evaluate(translators, args.data, directions, features=features, progress=sys.stdout.isatty())
    print(format_report(report))
    if args.out:
        write_json(args.out, report)
        print(f"Wrote {args.out}")


def _import_torch(args):
    from tf_cyclegan.files import OutputExists, refuse_existing

    if not args.out.endswith(".keras"):
        raise ValueError(f"--out {args.out!r} must name a .keras file")
    if os.path.isdir(args.out):
        raise OutputExists(f"--out {args.out!r} is a folder: give the .keras file's name")
    if not args.overwrite:
        refuse_existing([args.out])
    from tf_cyclegan.files import save_model_atomically
    from tf_cyclegan.torch_import.load import checkpoint_kind, load_torch_cut, load_torch_cyclegan, load_torch_generator

    paths = args.paths[0] if len(args.paths) == 1 else args.paths
    if len(args.paths) == 1 and not os.path.isdir(args.paths[0]):
        model = load_torch_generator(args.paths[0])
        what = "generator (use it as the a2b direction)"
    elif checkpoint_kind(paths) == "cut":
        model = load_torch_cut(paths)
        what = (f"{'FastCUT' if model.flip_equivariance and not model.nce_identity else 'CUT'} model (G -> generator, "
                "D -> discriminator, F -> feature_head; train --init-from it with model.kind cut or fastcut)")
    else:
        model = load_torch_cyclegan(paths)
        what = "CycleGAN (G_A -> gen_a2b, G_B -> gen_b2a, D_A -> disc_b, D_B -> disc_a)"
    with warnings.catch_warnings():  # Keras warns of the image pools, which get built when training starts
        warnings.filterwarnings("ignore", message="You are saving a model that has not yet been built")
        save_model_atomically(model, args.out)
    print(f"Wrote {args.out}: a {what}")


def _split(text):
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _user_error_message(error):
    """The one line for an error the user can act on, or None for a bug (raised as is).

    Only modules already imported can have raised their errors, so nothing is imported here:
    a command that never started TensorFlow does not start it to report a bad value.
    """
    if isinstance(error, ValueError):  # ConfigError and OutputExists are ValueErrors
        return str(error)
    for module, name in (("tf_cyclegan.training.callbacks.backup", "BackupError"),
                         ("tf_cyclegan.training.callbacks.monitor", "TrainingDiverged")):
        if module in sys.modules and isinstance(error, getattr(sys.modules[module], name)):
            return str(error)
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError):  # TensorFlow reading files
        from tf_cyclegan.data.images import describe_error

        return describe_error(error)
    return None


def build_parser():
    from tf_cyclegan.benchmarking.arguments import BENCH_CHECKS
    from tf_cyclegan.checks import check_image_size

    parser = _Parser(prog="tf-cyclegan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a CycleGAN from a config")
    train.add_argument("--config", help="YAML file of overrides of the paper's defaults")
    train.add_argument("--set", action="extend", nargs="+", metavar="SECTION.KEY=VALUE", default=[],
                       help="override config values (several after one --set, or --set repeated)")
    train.add_argument("--run-dir", help="where the run's files go (default: runs/<config>-<time>); "
                       "an existing run there is resumed")
    train.add_argument("--init-from", metavar="MODEL.keras",
                       help="start a new run from the weights of a CycleGAN .keras (e.g. one import-torch wrote); "
                            "fresh optimizers")
    train.add_argument("--restart", action="store_true",
                       help="start the run in --run-dir over instead of resuming it (deletes its files)")
    train.set_defaults(func=_train)

    export = commands.add_parser("export", help="export generators to SavedModel, TFLite and ONNX")
    export.add_argument("model", help="a run directory or a .keras file")
    export.add_argument("--formats", default="savedmodel,tflite",
                        help="comma-separated: savedmodel, tflite, onnx (onnx needs the [onnx] extra)")
    export.add_argument("--directions", default="a2b,b2a")
    export.add_argument("--out", required=True, help="output folder, e.g. saved_models/NAME")
    export.add_argument("--tflite-size", type=_number(check_image_size),
                        help="TFLite input size, a multiple of 4 (default: training crop)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    export.add_argument("--calibration", metavar="DIR",
                        help="your images, to also write full-integer int8 TFLite calibrated on them: a folder of "
                             "one direction's inputs, or a dataset root (testA/ or trainA/ for a2b, B for b2a)")
    _add_weights_argument(export)
    export.set_defaults(func=_export)

    translate = commands.add_parser("translate", help="translate image files or folders")
    translate.add_argument("--model", required=True,
                           help="a .keras file, run directory, SavedModel directory, .tflite or .onnx file")
    translate.add_argument("--direction", choices=DIRECTIONS,
                           help="default: the model's only direction, or a2b; one it lacks is an error")
    translate.add_argument("--out", required=True, help="output folder")
    translate.add_argument("--tile", type=_number(check_image_size), default=512,
                           help="tile size for large images, a multiple of 4 of at least 8 (default: 512)")
    translate.add_argument("--precision", default="float32", type=_precision, choices=PRECISIONS,
                           help="arithmetic of .keras and SavedModel models: auto picks bfloat16 on a CPU with "
                                "bfloat16 instructions, float16 on a GPU, else float32 (default: float32, exact)")
    translate.add_argument("--overwrite", action="store_true", help="replace output files that exist")
    translate.add_argument("inputs", nargs="+", help="image files or folders")
    _add_weights_argument(translate)
    translate.set_defaults(func=_translate)

    evaluate = commands.add_parser("evaluate", help="FID, KID, cycle consistency and paired error")
    evaluate.add_argument("--model", required=True, help="any model path `translate` accepts")
    evaluate.add_argument("--data", required=True, help="folder with testA/ and testB/ (and testB_paired/)")
    evaluate.add_argument("--direction", default="both", choices=(*DIRECTIONS, "both"),
                          help="both (default): every direction the model has; a lone generator has one")
    evaluate.add_argument("--out", help="write the report as JSON here")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    evaluate.add_argument("--inception-weights", default="imagenet",
                          help="local InceptionV3 (include_top=False) weights file, for machines "
                               "without internet (default: download ImageNet weights once)")
    evaluate.add_argument("--no-fid", action="store_true", help="skip FID and KID")
    _add_weights_argument(evaluate)
    evaluate.set_defaults(func=_evaluate)

    bench = commands.add_parser("bench", help="time the training step (JSON keys of the PyTorch reference's)")
    bench.add_argument("--size", type=_number(BENCH_CHECKS["size"]), default=128,
                       help="image size, a multiple of 4 of at least 24")
    bench.add_argument("--batch", type=_number(BENCH_CHECKS["batch"]), default=1)
    bench.add_argument("--filters", "--ngf", type=_number(BENCH_CHECKS["filters"]), default=64,
                       help="generator filters (--ngf: old name)")
    bench.add_argument("--num-residual-blocks", "--blocks", type=_number(BENCH_CHECKS["num_residual_blocks"]),
                       default=9,
                       help="generator residual blocks (--blocks: old name)")
    bench.add_argument("--upsampling", default="transpose", choices=UPSAMPLINGS,
                       help="the generators' (docs/checkerboard.md), for --model-kind cyclegan")
    bench.add_argument("--model-kind", default="cyclegan", choices=MODEL_KINDS,
                       help="the method whose step is timed, as model.kind (docs/cut.md)")
    bench.add_argument("--steps", type=_number(BENCH_CHECKS["steps"]), default=10, help="timed steps (1 or more)")
    bench.add_argument("--warmup", type=_number(BENCH_CHECKS["warmup"]), default=2,
                       help="untimed steps after the first (0 or more)")
    bench.add_argument("--precision", default="float32", type=_precision, choices=PRECISIONS)
    bench.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"))
    bench.add_argument("--cpu-speedups", default="auto", choices=CPU_SPEEDUPS,
                       help="the CPU speed devices, as train.cpu_speedups (auto: on without a GPU)")
    bench.add_argument("--cpu-allocator", default="auto", choices=ALLOCATORS,
                       help="TensorFlow's host-memory allocator (auto: TensorFlow's own choice)")
    bench.set_defaults(func=_bench)

    torch_import = commands.add_parser(
        "import-torch", help="a PyTorch CycleGAN or CUT checkpoint (.pth files) as a .keras model")
    torch_import.add_argument("paths", nargs="+", metavar="PATH",
                              help="one generator .pth (e.g. latest_net_G.pth; CycleGAN's or CUT's), a checkpoint "
                                   "folder, or its files: a CycleGAN's *_net_G_A.pth, *_net_G_B.pth, *_net_D_A.pth, "
                                   "*_net_D_B.pth, or an official CUT run's *_net_G.pth, *_net_D.pth, *_net_F.pth")
    torch_import.add_argument("--out", required=True, help="the .keras file to write")
    torch_import.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    torch_import.set_defaults(func=_import_torch)

    demo = commands.add_parser("make-demo-data", help="write the synthetic dataset")
    demo.add_argument("out", help="output folder")
    from tf_cyclegan.data.synthetic import DEMO_DATA_CHECKS

    demo.add_argument("--num-train", type=_number(DEMO_DATA_CHECKS["num_train"]), default=200)
    demo.add_argument("--num-test", type=_number(DEMO_DATA_CHECKS["num_test"]), default=20)
    demo.add_argument("--size", type=_number(DEMO_DATA_CHECKS["size"]), default=72)
    demo.add_argument("--seed", type=_number(DEMO_DATA_CHECKS["seed"]), default=0)
    demo.set_defaults(func=_make_demo_data)
    return parser


def main(argv=None):
    """Runs one command; every failure the user can act on ends in one line on stderr.

    Exit codes: 0 done, 2 an error (bad input, a file that cannot be read or written, a run
    that cannot go on), 130 interrupted (Ctrl-C).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # a bad command line, said in one line (`_Parser.error`), or --help
        return stop.code
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def fail(message, code=2):
        print(f"tf-cyclegan {args.command}: error: {message}", file=sys.stderr)
        return code

    try:
        args.func(args)
    except KeyboardInterrupt as interrupt:
        print(f"tf-cyclegan {args.command}: {str(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130
    except ImportError as error:  # an optional module that is not installed
        top = (error.name or "").split(".")[0]
        if top == "tf_cyclegan":  # this package's own import failing is a bug, not a missing extra
            raise
        if "pip install" in str(error):  # the message says what to install (a TFDS dataset's module)
            return fail(" ".join(str(error).split()))  # in one line
        if top in ("onnx", "onnxruntime", "tf2onnx"):
            return fail(f"{error}. Install the [onnx] extra: pip install 'tf_cyclegan[onnx]'")
        return fail(f"{error}. Install it: pip install {top or 'the missing module'}")
    except OSError as error:  # a full disk, a folder that cannot be written, a file that vanished
        where = f": {error.filename}" if error.filename else ""
        return fail(f"{error.strerror or error}{where}")
    except Exception as error:
        message = _user_error_message(error)
        if message is None:
            raise
        return fail(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
