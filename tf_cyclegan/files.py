"""Writing files so that nothing a user has is lost: whole or not at all, never over what was not asked for.

Every file or folder the package writes for a user (models, exports, translations, reports,
run records) goes through `replacing`: it is written under a hidden temporary name beside
its destination and renamed into place only once complete, so a kill, a full disk or a
failed conversion leaves the earlier file as it was and no partial file that looks real.
`refuse_existing` is the one check, made before any work, that a command would not replace
what the user did not ask it to.
"""

import contextlib
import errno
import json
import math
import os
import shutil

TMP_PREFIX = ".tmp-"


class OutputExists(ValueError):
    """A command would replace a file or folder that the user did not ask it to replace."""


def refuse_existing(paths, hint="use --overwrite to replace it, or write somewhere else"):
    """Raises `OutputExists` naming the first of `paths` that exists (and how many more do)."""
    existing = [os.fspath(p) for p in paths if os.path.lexists(p)]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputExists(f"{existing[0]!r} exists already{more}: {hint}.")


def remove(path):
    """Deletes a file, a symbolic link (not what it points to) or a folder; nothing if absent."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def replacing(path, suffix=""):
    """Yields a temporary path beside `path`; renames it to `path` when the block completes.

    Whatever the block writes there (a file or a folder) replaces `path` in one rename once
    the block ends normally; if it raises (or the process is killed), the temporary path is
    removed (or left hidden, as `.tmp-*`) and `path` is untouched. `suffix` ends the
    temporary name, for writers that choose the format by extension (".keras").
    """
    path = os.path.abspath(os.fspath(path))  # "out/" and "." name their folder, not a place inside it
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.path.basename(path)}{suffix}")
    remove(tmp)
    try:
        yield tmp
        if os.path.isdir(tmp) and os.path.isdir(path):
            # A folder cannot be renamed over a non-empty one: move the old aside first, and
            # back if the new one cannot take its place.
            old = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-old-{os.path.basename(path)}")
            remove(old)
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            remove(old)
        else:
            os.replace(tmp, path)
    finally:
        remove(tmp)


def state_bytes(model):
    """About how many bytes a model's weights and its optimizers' variables take on disk."""
    import numpy as np

    variables = list(model.weights)
    for name in ("optimizer", "gen_optimizer", "disc_optimizer"):
        optimizer = getattr(model, name, None)
        variables += [v for v in getattr(optimizer, "variables", []) if all(v is not w for w in variables)]
    # math.prod over plain ints: NumPy reads a TensorShape whose conversion fails as a scalar.
    return sum(math.prod(int(d) for d in v.shape) * np.dtype(v.dtype).itemsize for v in variables)


def check_free_space(directory, needed, what):
    """Raises `OSError(ENOSPC)` naming `what` before a write of `needed` bytes into `directory`
    that cannot fit.

    HDF5 (which Keras writes weights with) does not recover from a full disk part-way through a
    file: the failed file's objects crashed the process (SIGSEGV) when they were freed. So the
    space is checked first, with a margin for HDF5's and the archive's own structures.
    """
    free = shutil.disk_usage(directory).free
    if free < needed * 1.1 + (1 << 20):
        raise OSError(errno.ENOSPC, f"No space left on device: {what} needs about {needed / 2**20:.1f} MB, "
                                    f"{free / 2**20:.1f} MB are free in {os.fspath(directory)}")


def write_bytes(path, data):
    """Writes `data` to `path` whole or not at all (see `replacing`)."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path`, whole or not at all."""
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def remove_stale_temporaries(directory):
    """Deletes the temporary files and folders that killed writers left in `directory`
    (those of processes no longer running)."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        pid = name[len(TMP_PREFIX):].split("-", 1)[0]
        if name.startswith(TMP_PREFIX) and pid.isdigit() and not _running(int(pid)):
            remove(os.path.join(directory, name))


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_model_atomically(model, path):
    """Saves to a temporary file beside `path`, then renames: a crash or a full disk never
    leaves half a file, nor a temporary one, and the earlier file at `path` stays whole."""
    with replacing(path, suffix=".keras") as tmp:
        check_free_space(os.path.dirname(tmp), state_bytes(model), os.path.basename(os.fspath(path)))
        model.save(tmp)
