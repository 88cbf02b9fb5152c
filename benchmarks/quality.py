"""Methods and options judged on real photographs with a known answer: error and checkerboard.

    python benchmarks/quality.py --out runs/quality                  # 2 options x 2 seeds, 5,000 steps
    python benchmarks/quality.py --out runs/quality --options transpose,resize --seeds 0
    python benchmarks/quality.py --out runs/quality --options transpose --ema-decays 0.999,0.99,0.9999
    python benchmarks/quality.py --out runs/quality --options transpose,cut,fastcut
    python benchmarks/quality.py --out runs/quality_thicken --task thicken --options transpose,cut,fastcut

Domain A: random crops of the colour photographs that scikit-image, scikit-learn and
matplotlib install with themselves (no download; `pip install scikit-image scikit-learn
matplotlib`, benchmark-only dependencies). Domain B: crops from other random places, restyled by
`restyle` (a fixed colour transform and an unsharp mask: local, and sharpening rather than
blurring, so it cannot hide a grid); with `--task thicken`, by `thicken` instead (every dark
stroke and detail made thicker, the colours kept: a change of shape that no generator can
undo, where CUT's one-way loss should beat CycleGAN's cycle). Each photograph's bottom 35 %
is held out: `testA` and
`testB_paired` (the restyled truth of each testA crop) come only from there, at 96 px.

Each option and seed trains with the library's own `train_and_evaluate` on the reference's
CPU-sized settings (64 px crops, 32 filters, 6 residual blocks, the paper's losses, 5,000
steps: half constant learning rate, half decay), then translates testA and prints, per run:
MAE, PSNR and SSIM against the truth (and the untranslated input's, the do-nothing
baseline), the checkerboard score (`tf_cyclegan.evaluation.checkerboard`) of the output and of
the truth, and the median step time. The runs of one seed (one per option) go side by side,
each with max(1, 2 / options) threads, and the next seed starts when they have all ended, so
that the options' step times share the machine's conditions. A finished run is not
repeated (its result.json is read back); a killed one resumes from its backup. Writes one
grid per option and seed, `grid_<option>_seed<seed>.png`: rows of input | output | truth, and
one per seed over the options asked for, `grid_seed<seed>.png`: input | each option | truth
(re-translated from each run's model.keras); each shown at 2x with nearest-neighbour so that a
grid stays visible.

With `--ema-decays D1,D2,...` each run also averages its generators' weights
(`model.ema_decay`, tf_cyclegan/models/averaging.py) and is scored both ways: the trained
(raw) generator and the averaged one, for each decay. The model keeps the first decay's
average (saved, resumed); the others are kept beside it by `ExtraAverages`, with the library's
own update, and are exact for a run that was not resumed (a resumed run restarts them, and its
result says so). Training is the same for all of them: one run gives every row of a seed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

TRAIN_CROP = 64
TEST_CROP = 96
HELD_OUT = 0.35  # of each photograph's rows, at the bottom
EPOCHS = 20  # 10 constant + 10 decaying, steps / 20 each
# An option is a CycleGAN upsampling ("transpose", "resize") or one of these methods
# (`model.kind`), trained on the same task at the same sizes and steps.
METHODS = ("cut", "fastcut")


def photographs():
    """(name, HxWx3 uint8) of every colour photograph the three packages ship offline."""
    import matplotlib
    import skimage
    import sklearn.datasets
    from PIL import Image

    def read(path):
        return np.asarray(Image.open(path).convert("RGB"))

    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    found = [(name, read(os.path.join(folder, name))) for name in
             ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")]
    for name, image in zip(("china", "flower"), sklearn.datasets.load_sample_images().images):
        found.append((name, image))
    hopper = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    found.append(("grace_hopper.jpg", read(hopper)))
    return [(name, np.ascontiguousarray(image[..., :3])) for name, image in found]


# The restyling: a colour transform (channel mixing, then a gamma) and a local sharpening.
COLOUR_MATRIX = np.array([[0.80, 0.25, 0.05], [0.10, 0.75, 0.25], [0.05, 0.15, 0.70]])
COLOUR_OFFSET = np.array([0.06, 0.02, 0.10])
GAMMA = 0.8
SHARPEN_AMOUNT = 1.0  # unsharp mask: x + amount * (x - gaussian(x, sigma))
SHARPEN_SIGMA = 1.0


def restyle(image_uint8):
    """The B-domain rendering of an A-domain image (uint8 in, uint8 out)."""
    from scipy.ndimage import gaussian_filter

    x = image_uint8.astype(np.float64) / 255.0
    x = np.clip(x @ COLOUR_MATRIX.T + COLOUR_OFFSET, 0.0, 1.0) ** GAMMA
    blurred = gaussian_filter(x, sigma=(SHARPEN_SIGMA, SHARPEN_SIGMA, 0), mode="reflect")
    x = np.clip(x + SHARPEN_AMOUNT * (x - blurred), 0.0, 1.0)
    return np.round(x * 255.0).astype(np.uint8)


THICKEN_SIZE = 5  # the square a pixel takes the darkest value of, per channel


def thicken(image_uint8):
    """The `thicken` task's B rendering: every dark stroke, edge and detail made thicker (a
    grey-level erosion, the darkest value of the 5x5 square around each pixel, per channel),
    the colours kept. A change of shape, not of colour, and many to one: no generator can
    undo it exactly, which a cycle asks of CycleGAN's and nothing asks of CUT's."""
    from scipy.ndimage import grey_erosion

    return grey_erosion(image_uint8, size=(THICKEN_SIZE, THICKEN_SIZE, 1), mode="reflect")


# `--task`: how a B image is rendered from an A image (the truth of each test pair).
TASKS = {"restyle": restyle, "thicken": thicken}


def _crops(rng, regions, size, count):
    out = []
    for _ in range(count):
        region = regions[rng.integers(len(regions))]
        y = rng.integers(region.shape[0] - size + 1)
        x = rng.integers(region.shape[1] - size + 1)
        out.append(region[y:y + size, x:x + size])
    return out


def make_data(root, task="restyle", train_per_domain=600, test_count=64, seed=1234):
    """Writes trainA, trainB, testA, testB, testB_paired under `root` (once), B rendered by
    `TASKS[task]`; an existing folder of another task is an error."""
    from PIL import Image

    done = os.path.join(root, "done")
    if os.path.exists(done):
        with open(done) as f:
            made = f.read().strip() or "restyle"  # folders of before the task option: restyle
        if made != task:
            sys.exit(f"{root} holds the data of task {made!r}, not {task!r}: use another --out")
        return
    render = TASKS[task]
    rng = np.random.default_rng(seed)
    train_regions, test_regions = [], []
    for _, image in photographs():
        split = int(round(image.shape[0] * (1 - HELD_OUT)))
        train_regions.append(image[:split])
        test_regions.append(image[split:])
    splits = {
        "trainA": _crops(rng, train_regions, TRAIN_CROP, train_per_domain),
        "trainB": [render(c) for c in _crops(rng, train_regions, TRAIN_CROP, train_per_domain)],
        "testA": _crops(rng, test_regions, TEST_CROP, test_count),
        "testB": [render(c) for c in _crops(rng, test_regions, TEST_CROP, test_count)],
    }
    splits["testB_paired"] = [render(c) for c in splits["testA"]]
    for split, images in splits.items():
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(os.path.join(root, split, f"{i:04d}.png"))
    with open(done, "w") as f:
        f.write(task)


def train_one(option, seed, steps, data_root, run_dir, threads, ema_decays=()):
    """Trains one option and seed; returns its result dict (also written to run_dir/result.json)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    from tf_cyclegan.data.images import list_images, load_image
    from tf_cyclegan.evaluation.checkerboard import checkerboard_score
    from tf_cyclegan.evaluation.paired import paired_paths_for, paired_scores
    from tf_cyclegan.inference.loading import load_keras_file
    from tf_cyclegan.inference.translate import translate
    from tf_cyclegan.models.averaging import averaged_copy, update_average
    from tf_cyclegan.training.config import load_config
    from tf_cyclegan.training.train import train_and_evaluate

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.durations = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.durations.append(time.perf_counter() - self._start)

    class ExtraAverages(keras.callbacks.Callback):
        """Averages of gen_a2b for more decays than the model's one, by the library's update."""

        def __init__(self, decays):
            super().__init__()
            self.decays, self.averages, self.count = decays, {}, 0

        def on_train_batch_end(self, batch, logs=None):
            if not self.averages:
                self.averages = {decay: averaged_copy(self.model.gen_a2b, f"ema_{decay}") for decay in self.decays}
            self.count += 1
            for decay, average in self.averages.items():
                update_average(average, self.model.gen_a2b, decay, self.count)

    config = load_config(overrides={
        "data": {"root": data_root, "load_size": TRAIN_CROP, "crop_size": TRAIN_CROP, "num_samples": 4},
        "model": {"filters": 32, "num_residual_blocks": 6, "ema_decay": ema_decays[0] if ema_decays else None,
                  **({"kind": option} if option in METHODS else {"upsampling": option})},
        "train": {"epochs": EPOCHS // 2, "epochs_decay": EPOCHS // 2, "steps_per_epoch": steps // EPOCHS,
                  "seed": seed, "precision": "float32", "verbose": 2},
        "backup": {"every_n_steps": 500},
        "checkpoint": {"every_n_epochs": 0},
        "monitor": {"images_every_n_steps": 0},
    })
    timer = StepTimer()
    extra = ExtraAverages(ema_decays[1:])
    resumed = os.path.isdir(os.path.join(run_dir, "backup"))
    started = time.perf_counter()
    train_and_evaluate(config, run_dir, callbacks=[timer, extra] if ema_decays else [timer])
    train_s = time.perf_counter() - started

    trained = load_keras_file(os.path.join(run_dir, "model.keras"))
    gen_a2b = trained.get_generator("a2b", weights="raw")
    paths = list_images(os.path.join(data_root, "testA"))
    sources = [load_image(path).numpy() for path in paths]
    fakes = [translate(gen_a2b, source).numpy() for source in sources]
    truth_paths = paired_paths_for(paths, os.path.join(data_root, "testB_paired"))
    model, baseline = paired_scores(fakes, sources, truth_paths)
    truths = [load_image(path).numpy() for path in truth_paths]
    averaged = {}
    generators = {ema_decays[0]: trained.get_generator("a2b", weights="averaged")} if ema_decays else {}
    generators.update(extra.averages)
    for decay, generator in generators.items():
        outputs = [translate(generator, source).numpy() for source in sources]
        averaged[str(decay)] = {"model": paired_scores(outputs, sources, truth_paths)[0],
                                "checkerboard": checkerboard_score(np.stack(outputs)),
                                "exact": decay == ema_decays[0] or not resumed}
        _write_grid(os.path.join(os.path.dirname(run_dir), f"grid_{option}_ema{decay}_seed{seed}.png"),
                    sources, outputs, truths)
    timed = timer.durations[20:] or timer.durations
    result = {
        "option": option, "seed": seed, "steps": steps, "test_images": len(paths),
        "model": model, "baseline": baseline,
        "checkerboard": {"output": checkerboard_score(np.stack(fakes)), "truth": checkerboard_score(np.stack(truths)),
                         "input": checkerboard_score(np.stack(sources))},
        "step_ms": 1000 * statistics.median(timed) if timed else None, "timed_steps": len(timed),
        "train_s": train_s, "threads": threads, "parameters": gen_a2b.count_params(), "averaged": averaged,
    }
    _write_grid(os.path.join(os.path.dirname(run_dir), f"grid_{option}_seed{seed}.png"), sources, fakes, truths)
    with open(os.path.join(run_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def _write_seed_grid(out, data_root, options, seed, run_dir, rows=6):
    """grid_seed<seed>.png: input | each option's output | truth, for the first test images."""
    from tf_cyclegan.data.images import list_images, load_image
    from tf_cyclegan.evaluation.paired import paired_paths_for
    from tf_cyclegan.inference.loading import load_keras_file
    from tf_cyclegan.inference.translate import translate

    paths = list_images(os.path.join(data_root, "testA"))[:rows]
    sources = [load_image(path).numpy() for path in paths]
    columns = [sources]
    for option in options:
        gen_a2b = load_keras_file(os.path.join(run_dir(option, seed), "model.keras")).get_generator("a2b")
        columns.append([translate(gen_a2b, source).numpy() for source in sources])
    columns.append([load_image(path).numpy()
                    for path in paired_paths_for(paths, os.path.join(data_root, "testB_paired"))])
    _write_grid(os.path.join(out, f"grid_seed{seed}.png"), *columns, rows=rows)


def _write_grid(path, *columns, rows=6, scale=2):
    """Rows of images side by side, one column per list in `columns` ([-1, 1] images)."""
    from PIL import Image

    def unit8(image):  # [-1, 1] -> uint8, shown at `scale` x with nearest-neighbour
        image = np.round((np.clip(image, -1, 1) + 1) * 127.5).astype(np.uint8)
        return image.repeat(scale, 0).repeat(scale, 1)

    gap = 4
    lines = []
    for images in list(zip(*columns))[:rows]:
        shown = [unit8(image) for image in images]
        spacer = np.full((shown[0].shape[0], gap, 3), 255, np.uint8)
        lines.append(np.concatenate([part for image in shown for part in (image, spacer)][:-1], axis=1))
    spaced = []
    for line in lines:
        spaced += [line, np.full((gap, line.shape[1], 3), 255, np.uint8)]
    Image.fromarray(np.concatenate(spaced[:-1], axis=0)).save(path)


def _table(results):
    header = ("| option | seed | MAE | PSNR dB | SSIM | checkerboard (output) | checkerboard (truth) "
              "| step ms |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for r in results:
        rows.append(f"| {r['option']} | {r['seed']} | {r['model']['mae']:.4f} | {r['model']['psnr']:.2f} | "
                    f"{r['model']['ssim']:.4f} | {r['checkerboard']['output']:.2f} | {r['checkerboard']['truth']:.2f} "
                    f"| {r['step_ms']:.0f} |")
    b = results[0]
    rows.append(f"| do nothing (input) | - | {b['baseline']['mae']:.4f} | {b['baseline']['psnr']:.2f} | "
                f"{b['baseline']['ssim']:.4f} | {b['checkerboard']['input']:.2f} | "
                f"{b['checkerboard']['truth']:.2f} | - |")
    summary = []
    for option in dict.fromkeys(r["option"] for r in results):
        mine = [r for r in results if r["option"] == option]
        summary.append(f"| {option} | {len(mine)} | {statistics.mean(r['model']['mae'] for r in mine):.4f} | "
                       f"{statistics.mean(r['model']['psnr'] for r in mine):.2f} | "
                       f"{statistics.mean(r['checkerboard']['output'] for r in mine):.2f} | "
                       f"{statistics.mean(r['step_ms'] for r in mine):.0f} |")
    means = ("Means over seeds:\n\n| option | seeds | MAE | PSNR dB | checkerboard (output) | step ms |\n"
             "|---|---:|---:|---:|---:|---:|\n")
    table = header + "\n" + "\n".join(rows) + "\n\n" + means + "\n".join(summary)
    if any(r.get("averaged") for r in results):
        table += "\n\n" + _averaged_table(results)
    return table


def _averaged_table(results):
    """Each run's raw generator against its averages, and the change in MAE per decay."""
    lines = ["Raw against averaged generators, the same runs:", "",
             "| option | seed | generator | MAE | PSNR dB | SSIM | checkerboard | MAE vs raw |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['option']} | {r['seed']} | raw | {r['model']['mae']:.4f} | {r['model']['psnr']:.2f} | "
                     f"{r['model']['ssim']:.4f} | {r['checkerboard']['output']:.2f} | - |")
        for decay, a in r.get("averaged", {}).items():
            note = "" if a["exact"] else " (restarted at resume)"
            lines.append(f"| {r['option']} | {r['seed']} | ema {decay}{note} | {a['model']['mae']:.4f} | "
                         f"{a['model']['psnr']:.2f} | {a['model']['ssim']:.4f} | {a['checkerboard']:.2f} | "
                         f"{100 * (a['model']['mae'] / r['model']['mae'] - 1):+.1f} % |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/quality", help="work folder: data, runs, grids")
    parser.add_argument("--options", default="transpose,resize")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=5000, help=f"training steps, a multiple of {EPOCHS}")
    parser.add_argument("--task", default="restyle", choices=sorted(TASKS),
                        help="restyle: a colour transform and sharpening; thicken: dark strokes made thicker")
    parser.add_argument("--one", nargs=2, metavar=("OPTION", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--ema-decays", default="",
                        help="score each run's averaged generators too, for these decays (the first kept by the model)")
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps % EPOCHS:
        parser.error(f"--steps must be a multiple of {EPOCHS}")
    ema_decays = [float(decay) for decay in args.ema_decays.split(",") if decay]
    data_root = os.path.join(args.out, "data")

    def run_dir(option, seed):
        return os.path.join(args.out, f"{option}{'_ema' if ema_decays else ''}_seed{seed}")

    if args.one:
        option, seed = args.one[0], int(args.one[1])
        result = train_one(option, seed, args.steps, data_root, run_dir(option, seed), args.threads, ema_decays)
        print(json.dumps(result))
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    make_data(data_root, args.task)
    options, seeds = args.options.split(","), [int(seed) for seed in args.seeds.split(",")]
    jobs = [(option, seed) for seed in seeds for option in options]
    # A seed's options side by side, the next seed after them; one option: two seeds at a time.
    groups = [jobs[i:i + 2] for i in range(0, len(jobs), 2)] if len(options) == 1 else \
        [[(option, seed) for option in options] for seed in seeds]
    threads = max(1, 2 // len(groups[0]))
    results = {}
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    for group in groups:
        running = []
        for option, seed in group:
            if os.path.exists(os.path.join(run_dir(option, seed), "result.json")):
                continue
            log = open(os.path.join(args.out, "logs", f"{os.path.basename(run_dir(option, seed))}.log"), "w")
            command = [sys.executable, __file__, "--out", args.out, "--steps", str(args.steps),
                       "--threads", str(threads), "--ema-decays", args.ema_decays, "--one", option, str(seed)]
            running.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            print(f"started {option} seed {seed}", flush=True)
        for process in running:
            process.wait()
    for option, seed in jobs:
        path = os.path.join(run_dir(option, seed), "result.json")
        if not os.path.exists(path):
            log = os.path.join(args.out, "logs", f"{os.path.basename(run_dir(option, seed))}.log")
            sys.exit(f"{option} seed {seed} failed: see {log}")
        with open(path) as f:
            results[option, seed] = json.load(f)
    ordered = [results[job] for job in jobs]
    for seed in seeds:
        _write_seed_grid(args.out, data_root, options, seed, run_dir)
    print(json.dumps(ordered))
    print(_table(ordered))


if __name__ == "__main__":
    main()
