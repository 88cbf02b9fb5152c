"""Writing files so that nothing a user has is lost: whole or not at all, never over what was not asked for.

Every file or folder the package writes for a user (models, exports, translations, reports,
run records) goes through `replacing`: it is written under a hidden temporary name beside
its destination and renamed into place only once complete, so a kill, a full disk or a
failed conversion leaves the earlier file as it was and no partial file that looks real.
`refuse_existing` is the one check, made before any work, that a command would not replace
what the user did not ask it to. `remove_matching` deletes exactly the files that named
writers made (by their name patterns), and `lock_directory` keeps two processes from writing
into one directory at once.
"""

import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import socket
import time

TMP_PREFIX = ".tmp-"

logger = logging.getLogger(__name__)


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


def temporaries_of(name_pattern):
    """The regex of the temporary names that `replacing` gives while writing a file whose name
    matches `name_pattern` (a regex), so that a cleaner can recognise them as the writer's too."""
    return rf"{re.escape(TMP_PREFIX)}\d+-(?:old-)?(?:{name_pattern})(?:\.[A-Za-z0-9]+)?"


def find_matching(root, files, folders):
    """The files under `root` that a writer made, as sorted relative paths ("/"-separated).

    Only folders whose relative path fully matches one of the regexes `folders` are entered
    (a folder of the user's inside `root` is never looked into), and only files whose relative
    path fully matches one of the regexes `files` are returned.
    """
    files, folders = [re.compile(p) for p in files], [re.compile(p) for p in folders]
    found = []

    def visit(folder, rel):
        try:
            names = os.listdir(folder)
        except OSError:
            return
        for name in names:
            path, child = os.path.join(folder, name), f"{rel}{name}"
            if os.path.isdir(path) and any(p.fullmatch(child) for p in folders):
                visit(path, child + "/")
            elif not os.path.isdir(path) and any(p.fullmatch(child) for p in files):
                found.append(child)

    visit(os.fspath(root), "")
    return sorted(found)


def remove_matching(root, files, folders, only=None):
    """Deletes what `find_matching(root, files, folders)` finds (restricted to the relative paths
    in `only`, if given), then each folder matching `folders` that is left empty, deepest first.

    Returns the relative paths of the files deleted. Nothing else under `root` is touched: a
    file of the user's in one of these folders stays, and so does its folder.
    """
    removed = [rel for rel in find_matching(root, files, folders) if only is None or rel in only]
    for rel in removed:
        remove(os.path.join(root, rel))
    patterns = [re.compile(p) for p in folders]
    for folder, subfolders, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        for name in subfolders:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if any(p.fullmatch(rel) for p in patterns) and not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.rmdir(path)  # only if empty
    return removed


LOCK_NAME = ".tf_cyclegan.lock"


class DirectoryLocked(ValueError):
    """Another process holds the lock of a directory (see `lock_directory`)."""


def _lock_owner(path):
    """The {"pid", "host"} a lock file records, or None if it holds none (yet)."""
    try:
        with open(path) as f:
            owner = json.load(f)
        return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _stale(path, owner):
    """Whether the lock at `path` is left by a process that is gone: one of this host that no
    longer runs, or a lock file without an owner (killed between creating and writing it)
    that is older than a few seconds."""
    if owner is None:
        try:
            return time.time() - os.path.getmtime(path) > 10
        except OSError:
            return False
    return owner.get("host") == socket.gethostname() and not _running(owner["pid"])


@contextlib.contextmanager
def lock_directory(directory, what="directory"):
    """Holds `directory/.tf_cyclegan.lock` while the block runs, so that two processes never
    write into one directory at once.

    The lock file is created atomically (O_CREAT | O_EXCL) and records the owner's pid and host.
    A lock whose process is gone from this host is stale: it is taken over, with a warning.
    The lock is removed when the block ends, however it ends (an error, a KeyboardInterrupt).

    Raises:
        DirectoryLocked: another live process (or one on another host) holds the lock; the
            message names it and the lock file.
    """
    path = os.path.join(os.fspath(directory), LOCK_NAME)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(path)
            if not _stale(path, owner):
                who = f"process {owner['pid']} on {owner.get('host')}" if owner else "another process"
                raise DirectoryLocked(
                    f"{os.fspath(directory)} is in use: {who} is working in it (lock file {path}). Wait for it to "
                    f"end or stop it; if that process is gone, delete {path}.") from None
            aside = f"{path}.stale-{os.getpid()}"
            try:
                os.rename(path, aside)  # one taker wins the rename; the others try again
            except FileNotFoundError:
                continue
            if _lock_owner(aside) != owner:  # a live lock that replaced the stale one meanwhile: put it back
                with contextlib.suppress(OSError):
                    os.link(aside, path)
                remove(aside)
                continue
            remove(aside)
            gone = f"process {owner['pid']} on {owner.get('host')} is gone" if owner else "it names no process"
            logger.warning("Took over the stale lock of %s %s: %s", what, os.fspath(directory), gone)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
            f.flush()
            os.fsync(f.fileno())
        break
    else:
        raise DirectoryLocked(f"Could not take the lock {path}: other processes keep taking it")
    try:
        yield path
    finally:
        if _lock_owner(path) == me:
            remove(path)
