"""`load_torch_generator` and `load_torch_cyclegan`: PyTorch CycleGAN checkpoints as our models.

The reference implementation saves `<epoch>_net_G_A.pth`, `_net_G_B.pth`, `_net_D_A.pth` and
`_net_D_B.pth` in a checkpoint folder (`latest_` for the newest), and publishes pretrained
generators as single `latest_net_G.pth` files. Its `G_A` translates A to B (our `gen_a2b`),
`G_B` B to A (`gen_b2a`); `D_A` judges B images (our `disc_b`), `D_B` A images (`disc_a`).
"""

import logging
import os
import re

from tf_cyclegan.torch_import.checkpoint import CheckpointError, read_state_dict
from tf_cyclegan.torch_import.convert import discriminator_from_state_dict, generator_from_state_dict

logger = logging.getLogger(__name__)

# The reference's network name -> (our attribute, builder).
NETWORKS = {
    "G_A": ("gen_a2b", generator_from_state_dict),
    "G_B": ("gen_b2a", generator_from_state_dict),
    "D_A": ("disc_b", discriminator_from_state_dict),
    "D_B": ("disc_a", discriminator_from_state_dict),
}
_FILE = re.compile(r"^(?P<epoch>.+)_net_(?P<net>[GD]_[AB])\.pth$")


def _converted(path, build, name):
    try:
        return build(read_state_dict(path), name=name)
    except CheckpointError as error:
        message = str(error)
        if os.fspath(path) not in message:
            message = f"Cannot import {os.fspath(path)!r}: {message}"
        raise CheckpointError(message) from None


def load_torch_generator(path, name="gen_a2b"):
    """The reference's ResNet generator in `path` (a `.pth` state dict) as a Keras generator.

    Built by `build_resnet_generator` with the architecture read from the file (residual
    blocks, filters, norm), aligned as the reference, so that it computes what it computed in
    PyTorch. torch is not needed. Raises `ValueError` naming the file and what it holds when
    it is not such a generator.

    Example:
    >>> gen_a2b = load_torch_generator("horse2zebra_pretrained/latest_net_G.pth")  # doctest: +SKIP
    """
    return _converted(path, generator_from_state_dict, name)


def find_cyclegan_files(paths_or_folder):
    """{"G_A": path, "G_B": ..., "D_A": ..., "D_B": ...} of a checkpoint folder (its `latest_`
    files, else the highest epoch's) or of the given files (named `*_net_G_A.pth` ...)."""
    paths = [paths_or_folder] if isinstance(paths_or_folder, (str, os.PathLike)) else list(paths_or_folder)
    if len(paths) == 1 and os.path.isdir(paths[0]):
        folder = os.fspath(paths[0])
        by_epoch = {}
        for entry in os.listdir(folder):
            match = _FILE.match(entry)
            if match:
                by_epoch.setdefault(match["epoch"], {})[match["net"]] = os.path.join(folder, entry)
        complete = {epoch: files for epoch, files in by_epoch.items() if set(files) == set(NETWORKS)}
        if not complete:
            found = ", ".join(sorted(os.path.basename(p) for files in by_epoch.values() for p in files.values()))
            raise CheckpointError(f"{folder!r} has no complete set of the reference's checkpoint files "
                                  f"(<epoch>_net_G_A.pth, _net_G_B.pth, _net_D_A.pth, _net_D_B.pth); found: "
                                  f"{found or 'none'}")
        numbered = [epoch for epoch in complete if epoch.isdigit()]
        epoch = "latest" if "latest" in complete else max(numbered, key=int) if numbered else max(complete)
        logger.info("Importing the %s checkpoint of %s", epoch, folder)
        return complete[epoch]
    files = {}
    for path in paths:
        match = _FILE.match(os.path.basename(os.fspath(path)))
        if not match:
            raise CheckpointError(f"{os.fspath(path)!r}: cannot tell which network it is; name the files as the "
                                  "reference does (<epoch>_net_G_A.pth, _net_G_B.pth, _net_D_A.pth, _net_D_B.pth)")
        if match["net"] in files:
            raise CheckpointError(f"two files for {match['net']}: {files[match['net']]!r} and {os.fspath(path)!r}")
        files[match["net"]] = os.fspath(path)
    missing = sorted(set(NETWORKS) - set(files))
    if missing:
        raise CheckpointError(f"a CycleGAN needs the four networks; missing: {', '.join(missing)}")
    return files


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
