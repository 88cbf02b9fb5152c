"""`load_torch_generator`, `load_torch_cyclegan` and `load_torch_cut`: PyTorch CycleGAN and
CUT checkpoints as our models.

The reference implementation saves `<epoch>_net_G_A.pth`, `_net_G_B.pth`, `_net_D_A.pth` and
`_net_D_B.pth` in a checkpoint folder (`latest_` for the newest), and publishes pretrained
generators as single `latest_net_G.pth` files. Its `G_A` translates A to B (our `gen_a2b`),
`G_B` B to A (`gen_b2a`); `D_A` judges B images (our `disc_b`), `D_B` A images (`disc_a`).
The official CUT code saves `<epoch>_net_G.pth`, `_net_D.pth` and `_net_F.pth` (A to B, the
discriminator of B images, the feature head), and its options as `train_opt.txt`; its
pretrained models are single `latest_net_G.pth` files too.
"""

import logging
import os
import re

from tf_cyclegan.models.cut_generator import NCE_LAYERS
from tf_cyclegan.torch_import.checkpoint import CheckpointError, read_state_dict
from tf_cyclegan.torch_import.convert import (
    discriminator_from_state_dict,
    generator_from_layout,
    generator_from_state_dict,
    log_reading,
    read_generator_layout,
)
from tf_cyclegan.torch_import.cut import (
    cut_discriminator_from_state_dict,
    cut_generator_from_layout,
    feature_head_from_state_dict,
)

logger = logging.getLogger(__name__)

# The reference's network name -> (our attribute, builder).
NETWORKS = {
    "G_A": ("gen_a2b", generator_from_state_dict),
    "G_B": ("gen_b2a", generator_from_state_dict),
    "D_A": ("disc_b", discriminator_from_state_dict),
    "D_B": ("disc_a", discriminator_from_state_dict),
}
_FILE = re.compile(r"^(?P<epoch>.+)_net_(?P<net>[GD]_[AB])\.pth$")
CUT_NETWORKS = ("G", "D", "F")
_CUT_FILE = re.compile(r"^(?P<epoch>.+)_net_(?P<net>[GDF])\.pth$")
# The official `--nce_layers` default, the only one whose layers ours name (`NCE_LAYERS`).
_OFFICIAL_NCE_LAYERS = "0,4,8,12,16"


def _generator_from_state_dict(state_dict, name="gen_a2b", source="the file"):
    """Our ResNet generator (CycleGAN's) or CUT generator, whichever the file's layers are."""
    layout = read_generator_layout(state_dict)
    if layout.sampling == "antialiased":
        generator = cut_generator_from_layout(layout, name)
        what = "the official CUT generator: " + layout.summary()
    else:
        generator = generator_from_layout(layout, name)
        what = layout.summary()
    log_reading(source, what, layout.assumptions)
    return generator


def _converted(path, build, name):
    try:
        return build(read_state_dict(path), name=name, source=os.path.basename(os.fspath(path)))
    except CheckpointError as error:
        message = str(error)
        if os.fspath(path) not in message:
            message = f"Cannot import {os.fspath(path)!r}: {message}"
        raise CheckpointError(message) from None


def load_torch_generator(path, name="gen_a2b"):
    """The ResNet generator in `path` (a `.pth` state dict) as a Keras generator.

    A generator of the reference's architecture, whatever its modules' names, is built by
    `build_resnet_generator` with the architecture read from the file (residual blocks,
    filters, norm, biases, transposed or Upsample+conv upsampling), aligned as the reference,
    so that it computes what it computed in PyTorch; the official CUT generator (anti-aliased
    sampling) by `build_cut_generator`. What the file cannot say is assumed and logged.
    torch is not needed. Raises `ValueError` naming the file and what it holds when it is not
    such a generator.

    Example:
    >>> gen_a2b = load_torch_generator("horse2zebra_pretrained/latest_net_G.pth")  # doctest: +SKIP
    """
    return _converted(path, _generator_from_state_dict, name)


def find_cyclegan_files(paths_or_folder):
    """{"G_A": path, "G_B": ..., "D_A": ..., "D_B": ...} of a checkpoint folder (its `latest_`
    files, else the highest epoch's) or of the given files (named `*_net_G_A.pth` ...)."""
    return _find_files(paths_or_folder, _FILE, tuple(NETWORKS), "the reference's checkpoint files "
                       "(<epoch>_net_G_A.pth, _net_G_B.pth, _net_D_A.pth, _net_D_B.pth)", "a CycleGAN")


def _find_files(paths_or_folder, pattern, networks, what, model):
    """{network: path} of the newest complete set in a folder (`latest_`, else the highest
    epoch), or of the given files, by their names (`pattern`)."""
    paths = [paths_or_folder] if isinstance(paths_or_folder, (str, os.PathLike)) else list(paths_or_folder)
    if len(paths) == 1 and os.path.isdir(paths[0]):
        folder = os.fspath(paths[0])
        by_epoch = {}
        for entry in os.listdir(folder):
            match = pattern.match(entry)
            if match:
                by_epoch.setdefault(match["epoch"], {})[match["net"]] = os.path.join(folder, entry)
        complete = {epoch: files for epoch, files in by_epoch.items() if set(files) == set(networks)}
        if not complete:
            found = ", ".join(sorted(os.path.basename(p) for files in by_epoch.values() for p in files.values()))
            raise CheckpointError(f"{folder!r} has no complete set of {what}; found: {found or 'none'}")
        numbered = [epoch for epoch in complete if epoch.isdigit()]
        epoch = "latest" if "latest" in complete else max(numbered, key=int) if numbered else max(complete)
        logger.info("Importing the %s checkpoint of %s", epoch, folder)
        return complete[epoch]
    files = {}
    for path in paths:
        match = pattern.match(os.path.basename(os.fspath(path)))
        if not match:
            raise CheckpointError(f"{os.fspath(path)!r}: cannot tell which network it is; name the files as "
                                  f"{what}")
        if match["net"] in files:
            raise CheckpointError(f"two files for {match['net']}: {files[match['net']]!r} and {os.fspath(path)!r}")
        files[match["net"]] = os.fspath(path)
    missing = sorted(set(networks) - set(files))
    if missing:
        raise CheckpointError(f"{model} needs the {len(networks)} networks; missing: {', '.join(missing)}")
    return files


def checkpoint_kind(paths_or_folder):
    """"cyclegan" or "cut": which method's checkpoint files a folder (or a list of files)
    holds, by their names; `CheckpointError` listing what it found when neither."""
    paths = [paths_or_folder] if isinstance(paths_or_folder, (str, os.PathLike)) else list(paths_or_folder)
    names = os.listdir(paths[0]) if len(paths) == 1 and os.path.isdir(paths[0]) else [
        os.path.basename(os.fspath(p)) for p in paths]
    if any(_FILE.match(name) for name in names):
        return "cyclegan"
    if any(_CUT_FILE.match(name) for name in names):
        return "cut"
    raise CheckpointError(f"{', '.join(map(os.fspath, paths))}: no checkpoint files of the reference's CycleGAN "
                          "(<epoch>_net_G_A.pth, _net_G_B.pth, _net_D_A.pth, _net_D_B.pth) nor of the official CUT "
                          f"(<epoch>_net_G.pth, _net_D.pth, _net_F.pth); found: "
                          f"{', '.join(sorted(names)[:8]) or 'none'}")


def load_torch_cyclegan(paths_or_folder, **kwargs):
    """A `CycleGAN` made of the four networks of a reference checkpoint (a folder, or the
    G_A, G_B, D_A and D_B files), ready to `compile` and train on in TensorFlow.

    The optimizers' state is not in the reference's network files: training continues with
    fresh Adam moments (and so does the learning-rate schedule, from the config).

    Args:
        paths_or_folder: a checkpoint folder or the four `.pth` files.
        **kwargs: passed to `CycleGAN` (`lambda_cycle`, `pool_size`, ...).
    """
    from tf_cyclegan.models.cyclegan import CycleGAN

    files = find_cyclegan_files(paths_or_folder)
    networks = {ours: _converted(files[theirs], build, ours) for theirs, (ours, build) in NETWORKS.items()}
    return CycleGAN(networks["gen_a2b"], networks["gen_b2a"], networks["disc_a"], networks["disc_b"], **kwargs)


def find_cut_files(paths_or_folder):
    """{"G": path, "D": ..., "F": ...} of an official CUT checkpoint folder (its `latest_`
    files, else the highest epoch's) or of the given files (named `*_net_G.pth` ...)."""
    return _find_files(paths_or_folder, _CUT_FILE, CUT_NETWORKS, "the official CUT's checkpoint files "
                       "(<epoch>_net_G.pth, _net_D.pth, _net_F.pth)", "a CUT model")


def read_cut_options(folder):
    """The official run's options that say how it trained (`train_opt.txt` beside its
    networks, as `BaseOptions.print_options` writes it), as `CUT`'s keyword arguments plus
    "mode"; None without the file. Read as text: nothing in it runs."""
    path = os.path.join(folder, "train_opt.txt")
    if not os.path.isfile(path):
        return None
    options = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            key, colon, value = line.partition(":")
            if colon and value.split():
                options[key.strip()] = value.split()[0]
    nce_layers = options.get("nce_layers", _OFFICIAL_NCE_LAYERS)
    if nce_layers != _OFFICIAL_NCE_LAYERS:
        raise CheckpointError(f"{path!r}: --nce_layers {nce_layers}; only the official {_OFFICIAL_NCE_LAYERS} is "
                              "supported (the layers our CUT generator taps)")
    readers = {"CUT_mode": ("mode", lambda v: "fastcut" if v.lower() == "fastcut" else "cut"),
               "lambda_GAN": ("lambda_gan", float), "lambda_NCE": ("lambda_nce", float),
               "nce_idt": ("nce_identity", lambda v: v == "True"),
               "flip_equivariance": ("flip_equivariance", lambda v: v == "True"),
               "num_patches": ("num_patches", int), "nce_T": ("temperature", float)}
    try:
        return {ours: read(options[theirs]) for theirs, (ours, read) in readers.items() if theirs in options}
    except ValueError as error:
        raise CheckpointError(f"{path!r}: an option that is not a number: {error}") from None


def load_torch_cut(paths_or_folder, mode=None, **kwargs):
    """A `CUT` made of the three networks of an official CUT checkpoint (a folder, or its G, D
    and F files), ready to `compile` and train on in TensorFlow.

    The mode and loss weights come from the run's `train_opt.txt` where it lies beside the
    networks, else from `mode` (default "cut", the official default); the optimizers' state is
    not in the network files: training continues with fresh Adam moments.

    Args:
        paths_or_folder: a checkpoint folder or the three `.pth` files.
        mode: "cut" or "fastcut", or None (default): the run's, else "cut". Another mode
            than the run's takes that mode's official defaults, not the run's options.
        **kwargs: passed to `CUT` (`num_patches`, `seed`, `ema_decay`, ...).
    """
    from tf_cyclegan.models.cut import CUT, MODES

    files = find_cut_files(paths_or_folder)
    options = read_cut_options(os.path.dirname(files["G"]))
    found = "train_opt.txt" if options is not None else "the official defaults (no train_opt.txt beside the networks)"
    options = dict(options or {})
    run_mode = options.pop("mode", None)
    chosen = mode or run_mode or "cut"
    if chosen not in MODES:
        raise CheckpointError(f"mode must be one of {tuple(MODES)}. Received: mode={chosen!r}")
    if run_mode and chosen != run_mode:  # the run's loss weights belong to its mode
        found, options = f"the official defaults of {chosen} (asked for; the run trained as {run_mode})", {}
    logger.info("Importing a %s model: its options from %s", "FastCUT" if chosen == "fastcut" else "CUT", found)
    generator = _converted(files["G"], _generator_from_state_dict, "generator")
    if "down1_blur" not in {layer.name for layer in generator.layers}:
        raise CheckpointError(f"{files['G']!r} holds a CycleGAN generator, not the official CUT's")
    discriminator = _converted(files["D"], cut_discriminator_from_state_dict, "discriminator")
    head = _converted(files["F"], feature_head_from_state_dict, "feature_head")
    blocks = sum(1 for layer in generator.layers if layer.name.endswith("_add"))
    channels = [int(generator.get_layer(name).output.shape[-1]) for name in NCE_LAYERS] if blocks >= 5 else None
    if head.channels != channels:
        raise CheckpointError(f"{files['F']!r}: a feature head for layers of {head.channels} channels; the official "
                              f"--nce_layers {_OFFICIAL_NCE_LAYERS} of this generator give {channels}")
    return CUT(generator, discriminator, head, nce_layers=list(NCE_LAYERS), **{**MODES[chosen], **options, **kwargs})
