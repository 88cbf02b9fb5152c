"""Reading a PyTorch `.pth` state dict into NumPy arrays, without torch and without running code.

A `.pth` file is a pickle: loading one with `pickle` (or `torch.load(weights_only=False)`)
runs whatever functions it names. This reader rebuilds only what a state dict holds (an
ordered dict of tensors, and the storages behind them) and refuses every other global,
naming it, so a malicious file gets an error, never code execution.

Both of PyTorch's formats are read: the zip archive (`torch.save` since PyTorch 1.6: the
pickle in `<name>/data.pkl`, each storage's bytes in `<name>/data/<key>`) and the older
sequential one (`_use_new_zipfile_serialization=False`, and every `.pth` from before 1.6:
a magic number, a protocol version and system info, each pickled; the object's pickle; the
list of storage keys; then each storage as an 8-byte element count and its bytes).
"""

import collections
import io
import os
import pickle
import struct
import typing
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# PyTorch's storage classes, as pickles name them, and the NumPy type of their elements.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """A file that is not a PyTorch state dict this reader can rebuild safely."""


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Tensor(typing.NamedTuple):
    """A tensor as its pickle describes it: its storage (a flat array) and where in it it lies.
    Made into an array once the storages are read (`_materialize`)."""

    storage: np.ndarray
    offset: int
    size: tuple
    stride: tuple

    def array(self):
        """The tensor's elements, copied out of its storage; `CheckpointError` unless the shape,
        offset and strides stay inside the storage (a crafted file cannot read past it)."""
        if not isinstance(self.storage, np.ndarray) or len(self.size) != len(self.stride):
            raise CheckpointError("a tensor without a storage of its own")
        count = int(np.prod(self.size, dtype=np.int64)) if self.size else 1
        if self.offset < 0 or any(n < 0 for n in self.size) or any(s < 1 for n, s in zip(self.size, self.stride)
                                                                   if n > 1):
            raise CheckpointError(f"a tensor with an offset, size or stride out of range ({self.offset}, {self.size}, "
                                  f"{self.stride})")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if count > self.storage.size or (count and last >= self.storage.size):
            raise CheckpointError(f"a tensor of shape {self.size} reaches past its storage's "
                                  f"{self.storage.size} elements")
        if not self.size:
            return self.storage[self.offset:self.offset + 1].reshape(()).copy()
        if count == 0:
            return np.zeros(self.size, self.storage.dtype)
        itemsize = self.storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(self.storage[self.offset:], shape=self.size,
                                               strides=tuple(s * itemsize for s in self.stride))
        return np.array(view)


def _rebuild_tensor(storage, offset, size, stride, *_):
    return _Tensor(storage, int(offset), tuple(int(n) for n in size), tuple(int(n) for n in stride))


def _rebuild_parameter(data, requires_grad, backward_hooks, *_):
    return data


def _materialize(obj, budget):
    """`obj` with its tensors made arrays, copying at most `budget` (a one-item list) elements in
    all: as many as the storages hold, so that one storage named by many tensors cannot make
    the copies outgrow the file."""
    if isinstance(obj, _Tensor):
        array = obj.array()
        budget[0] -= array.size
        if budget[0] < 0:
            raise CheckpointError("its tensors hold more elements than its storages")
        return array
    if isinstance(obj, dict):
        return collections.OrderedDict((key, _materialize(value, budget)) for key, value in obj.items())
    return obj


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(f"it names {module}.{name}, which a PyTorch state dict does not need: refused "
                              "(only tensors, their storages and ordered dicts are rebuilt)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise CheckpointError(f"unexpected persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if key not in self.storages:
            self.storages[key] = self._load_storage(key, storage_type, numel)
        return self.storages[key]


def _as_array(data, dtype, numel, where):
    if dtype == "bfloat16":  # the upper half of a float32
        raw = np.frombuffer(data, np.uint16, count=numel)
        array = (raw.astype(np.uint32) << 16).view(np.float32)
    else:
        array = np.frombuffer(data, np.dtype(dtype).newbyteorder("<"), count=numel)
    if array.size != numel:
        raise CheckpointError(f"storage {where} holds {array.size} elements, the pickle says {numel} (truncated?)")
    return array


def _read_zip(archive):
    names = archive.namelist()
    pickles = [name for name in names if name.endswith("/data.pkl") or name == "data.pkl"]
    if len(pickles) != 1:
        raise CheckpointError("a zip archive without exactly one data.pkl: not a torch.save file")
    prefix = pickles[0][: -len("data.pkl")]
    if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").strip() != b"little":
        raise CheckpointError("saved on a big-endian machine: not supported")

    def read(name, most):
        """An entry's bytes: only an uncompressed one (torch.save writes no other), of at most
        `most` bytes, so a crafted archive cannot inflate to more than the file's size."""
        info = archive.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > most:
            raise CheckpointError(f"entry {name} is compressed or larger than expected: not a torch.save file")
        return archive.read(info)

    def load_storage(key, storage_type, numel):
        itemsize = 2 if storage_type.dtype == "bfloat16" else np.dtype(storage_type.dtype).itemsize
        try:
            data = read(f"{prefix}data/{key}", int(numel) * itemsize)
        except KeyError:
            raise CheckpointError(f"storage {key} is missing from the archive (truncated?)") from None
        return _as_array(data, storage_type.dtype, numel, key)

    unpickler = _StateDictUnpickler(io.BytesIO(read(pickles[0], os.path.getsize(archive.filename))), load_storage)
    return unpickler.load(), sum(storage.size for storage in unpickler.storages.values())


def _read_legacy(f):
    def no_storage(*_):
        raise CheckpointError("a storage outside the object's pickle")

    def next_pickle(load_storage=no_storage):
        return _StateDictUnpickler(f, load_storage).load()

    try:
        magic = next_pickle()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, struct.error, IndexError):
        raise CheckpointError("neither a zip archive nor PyTorch's older format") from None
    if magic != _LEGACY_MAGIC:
        raise CheckpointError("neither a zip archive nor PyTorch's older format (no magic number)")
    if next_pickle() != _LEGACY_PROTOCOL:
        raise CheckpointError("an unknown version of PyTorch's older format")
    next_pickle()  # system info: the saving machine's endianness and type sizes

    storages = {}
    room = [os.fstat(f.fileno()).st_size]  # bytes the storages can still claim: no more than the file has

    def allocate(key, storage_type, numel):  # filled in place once the bytes after the object are read
        if storage_type.dtype == "bfloat16":
            raise CheckpointError("bfloat16 tensors in PyTorch's older format are not supported")
        nbytes = int(numel) * np.dtype(storage_type.dtype).itemsize
        if not 0 <= nbytes <= room[0]:
            raise CheckpointError(f"storage {key} claims {numel} elements, more than the file holds")
        room[0] -= nbytes
        storages[key] = (storage_type, np.zeros(int(numel), np.dtype(storage_type.dtype).newbyteorder("<")))
        return storages[key][1]

    obj = next_pickle(allocate)
    for key in next_pickle():
        key = str(key)
        if key not in storages:
            raise CheckpointError(f"storage {key} is not used by the object")
        storage_type, array = storages[key]
        (count,) = struct.unpack("<q", f.read(8))
        if count != array.size:
            raise CheckpointError(f"storage {key} holds {count} elements, the pickle says {array.size}")
        data = f.read(array.nbytes)
        if len(data) != array.nbytes:
            raise CheckpointError(f"storage {key} is cut short (truncated file)")
        array[...] = np.frombuffer(data, array.dtype)
    return obj, sum(array.size for _, array in storages.values())


def read_state_dict(path):
    """The `.pth` file at `path` as an ordered dict of parameter name -> NumPy array.

    Accepts a state dict, or a dict holding one under "state_dict" or "model". Raises
    `CheckpointError` (a `ValueError`) naming the file and what is wrong.
    """
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                obj, elements = _read_zip(archive)
        else:
            with open(path, "rb") as f:
                obj, elements = _read_legacy(f)
        return _state_dict_of(_materialize(obj, [elements]))
    except CheckpointError as error:
        raise CheckpointError(f"Cannot read {path!r} as a PyTorch checkpoint: {error}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, TypeError, IndexError, KeyError,
            AttributeError, UnicodeDecodeError, OverflowError, ValueError, RecursionError, MemoryError) as error:
        raise CheckpointError(f"Cannot read {path!r} as a PyTorch checkpoint: damaged ({type(error).__name__}: "
                              f"{error})") from None


def _state_dict_of(obj):
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise CheckpointError("it does not hold a state dict (a mapping of names to tensors)")
    return collections.OrderedDict((str(k), v) for k, v in obj.items())
