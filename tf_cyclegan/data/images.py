"""Image files in and out, shared by everything that reads or writes images: decoding (with
EXIF orientation), listing a folder's readable images, and the [-1, 1] <-> uint8 conversions.

Every format decodes to what Pillow shows for the file: `Image.convert("RGB")` of its first
frame (grey expanded, alpha dropped, a palette looked up), 16-bit channels scaled to 8 bits,
turned as its EXIF orientation says. TensorFlow's decoders run inside `tf.data` without
Python, so they read the formats they read exactly as Pillow does: JPEG (grey and CMYK too,
with the accurate IDCT), PNG (palette, transparency, 16-bit) and simple WebP. Pillow reads
the rest, chosen by the file's first bytes (`decoded_by_pillow`): BMP (TensorFlow reads an
8-bit palette BMP as its grey indices and refuses 1-bit ones), GIF (it gives a transparent
pixel another colour than its palette entry) and extended WebP, with alpha, metadata or
animation (its WebP decoder crashes the whole process, "double free or corruption", on an
animated WebP). tests/data/test_images.py compares every format with Pillow's pixels.
"""

import contextlib
import io
import logging
import os
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
_EXIF_ORIENTATION = 0x0112
# The formats Pillow decodes (see the module docstring), each as (offset, bytes) that its
# files hold: BMP, GIF, extended WebP (a RIFF file whose first chunk is VP8X).
_PILLOW_SIGNATURES = (((0, b"BM"),), ((0, b"GIF8"),), ((0, b"RIFF"), (8, b"WEBPVP8X")))
_HEAD = 16  # bytes that every signature fits in


def exif_orientation(path):
    """The EXIF orientation tag of an image file (1 to 8; 1, as stored, where there is none).

    Phones store photos as the sensor saw them and record how to turn them for viewing;
    every viewer applies it, TensorFlow's decoders do not. A JPEG's EXIF block is found
    among its first segments and parsed by Pillow, so the image itself is never opened
    (Pillow refuses to open photos over 179 megapixels); other formats go through Pillow's
    header reader. Best effort: a file whose tag cannot be read counts as 1.
    """
    from PIL import Image

    try:
        segment = _jpeg_exif_segment(path)
        if segment is not None:
            exif = Image.Exif()
            exif.load(segment)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(os.fspath(path)) as image:
                    exif = image.getexif()
        orientation = exif.get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - any unreadable header means "as stored"
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def _jpeg_exif_segment(path, limit=1 << 17):
    """The `Exif\\0\\0...` APP1 segment of a JPEG file, or None (not a JPEG, or no EXIF up front)."""
    with open(os.fspath(path), "rb") as f:
        data = f.read(limit)
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\0\0":
            return data[i + 4:i + 2 + length]
        if marker in (0xDA, 0xD9):  # image data (or its end) starts: no EXIF before it
            return None
        i += 2 + length
    return None


def orient(image, orientation):
    """Turns an (H, W, C) image as EXIF `orientation` (an int or a scalar tensor) says, for viewing."""
    transpose = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,  # 1: as stored
        lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
        lambda: tf.reverse(image, [0, 1]),  # 3: rotated 180
        lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
        lambda: transpose(image),  # 5: transposed
        lambda: tf.reverse(transpose(image), [1]),  # 6: rotated 90 clockwise to view
        lambda: tf.reverse(transpose(image), [0, 1]),  # 7: transversed
        lambda: tf.reverse(transpose(image), [0]),  # 8: rotated 90 counter-clockwise to view
    ]
    return tf.switch_case(tf.cast(orientation, tf.int32) - 1, branches, default=lambda: image)


def not_a_regular_file(path):
    """Why `path` is not a regular file ("a FIFO", "a folder", ...), or None if it is one.

    Only regular files are images: opening a FIFO (named pipe) to read blocks until someone
    writes to it, for ever in a folder of images; a device may never end.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return error.strerror or str(error)
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), "not a file")
    return f"not a regular file ({kind})"


def read_image(path):
    """An image file as uint8 RGB (H, W, 3), turned as its EXIF orientation says.

    Raises:
        ValueError: naming `path`, if it is not a regular file (a FIFO would block for ever)
            or Pillow cannot decode it; `tf.errors.OpError` if TensorFlow cannot.
    """
    path = os.fspath(path)
    problem = not_a_regular_file(path)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return orient(decode_image(tf.io.read_file(path)), exif_orientation(path))


@tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32)], autograph=False)
def read_oriented(path, orientation):
    """The file at `path` (a string tensor) decoded as `decode_image` does and turned as EXIF
    `orientation` says: the graph that every `tf.data` pipeline reading files calls. Traced
    once a process and shared, so that making a pipeline does not build the decoders again."""
    return orient(decode_image(tf.io.read_file(path)), orientation)


def decoded_by_pillow(head):
    """True if Pillow, not TensorFlow, decodes the file whose first bytes are `head` (bytes)."""
    return any(all(head[at:at + len(magic)] == magic for at, magic in signature) for signature in _PILLOW_SIGNATURES)


def _decoded_by_pillow_tensor(contents):
    """`decoded_by_pillow` of a string tensor, in TensorFlow ops (inside a `tf.data` graph)."""
    head = tf.strings.substr(contents, 0, _HEAD)
    return tf.reduce_any([
        tf.reduce_all([tf.equal(tf.strings.substr(head, at, len(magic)), magic) for at, magic in signature])
        for signature in _PILLOW_SIGNATURES
    ])


def decode_with_pillow(contents):
    """Image file bytes as uint8 RGB (H, W, 3) by Pillow: the first frame, `convert("RGB")`.

    Raises:
        ValueError: Pillow cannot decode them (the message says why).
    """
    from PIL import Image

    with _pillow_errors(), Image.open(io.BytesIO(contents)) as image:  # an animation opens at its first frame
        return np.asarray(image.convert("RGB"))


@contextlib.contextmanager
def _pillow_errors():
    """Pillow failing on a file, as one ValueError saying why (its plugins raise many types on
    corrupt data; an unidentified file's message names a BytesIO object, not the file)."""
    from PIL import Image

    try:
        yield
    except Image.UnidentifiedImageError:
        raise ValueError("Pillow cannot identify the image format") from None
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"cannot decode the image: {error or type(error).__name__}") from None


def decode_image(contents):
    """Decodes JPEG/PNG/BMP/GIF/WebP bytes to uint8 RGB (H, W, 3), as Pillow shows them.

    Grey is expanded, alpha dropped, a palette looked up, 16-bit scaled, an animation's first
    frame taken (see the module docstring for which decoder reads what, and why). Eagerly,
    Pillow runs in Python; in a graph (`tf.data`), through `tf.py_function`, only for the
    files it decodes, so JPEG and PNG never leave TensorFlow.
    """
    if tf.executing_eagerly():
        data = contents.numpy() if tf.is_tensor(contents) else bytes(contents)
        if decoded_by_pillow(data[:_HEAD]):
            return tf.constant(decode_with_pillow(data))
        return _decode_with_tensorflow(contents)

    def pillow():
        image = tf.py_function(lambda data: decode_with_pillow(data.numpy()), [contents], tf.uint8)
        image.set_shape([None, None, 3])
        return image

    return tf.cond(_decoded_by_pillow_tensor(contents), pillow, lambda: _decode_with_tensorflow(contents))


def _decode_with_tensorflow(contents):
    """JPEG/PNG/simple WebP bytes to uint8 RGB by TensorFlow's decoders."""
    head = tf.strings.join([tf.strings.substr(contents, 0, 12), "\0" * 12])  # 12 bytes at least
    is_jpeg = tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff")
    is_webp = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), "RIFF"),
                             tf.equal(tf.strings.substr(head, 8, 4), "WEBP"))

    def jpeg():
        # The accurate integer IDCT, as Pillow (and every viewer) decodes; TensorFlow's default, the
        # fast one, is off by up to 75 levels on fine detail. CMYK comes out as RGB too.
        return tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")

    def sixteen_bit_or_eight():
        # dtype=uint16 maps 8-bit data onto the full 16-bit range too, so one conversion fits both.
        image = tf.io.decode_image(contents, channels=0, dtype=tf.uint16, expand_animations=False)
        return tf.cast(tf.bitwise.right_shift(image, 8), tf.uint8)

    def webp():  # 8-bit only, which TensorFlow's WebP decoder refuses to widen
        return tf.io.decode_image(contents, channels=0, dtype=tf.uint8, expand_animations=False)

    image = tf.cond(is_jpeg, jpeg, lambda: tf.cond(is_webp, webp, sixteen_bit_or_eight))
    channels = tf.shape(image)[-1]
    image = tf.cond(channels < 3, lambda: tf.image.grayscale_to_rgb(image[..., :1]), lambda: image[..., :3])
    image.set_shape([None, None, 3])
    return image


def to_minus_one_one(image):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image):
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round((tf.cast(image, tf.float32) + 1.0) * 127.5), 0, 255), tf.uint8)


def describe_error(error):
    """The first line of an exception's message, without TF's op and function decorations."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "}} " in message:
        message = message.split("}} ", 1)[1]
    return message.split(" [Op:", 1)[0].strip()


def image_file_problem(path, decode=True):
    """Why `path` is not a readable image file, or None: not a regular file, not one of the
    formats by its first bytes, or (with `decode`) not decodable."""
    problem = not_a_regular_file(path)  # first: opening a FIFO blocks
    if problem:
        return problem
    if not decode:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
        if not (head.startswith(_MAGIC) or head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
            return f"not a JPEG, PNG, BMP, GIF or WebP file (starts with {head[:4]!r})"
        decode_image(tf.io.read_file(path))
    except (OSError, ValueError, tf.errors.OpError) as error:
        return describe_error(error)
    return None


def image_names(directory):
    """Sorted paths of the files in `directory` named as images (not hidden), unchecked: no
    file is opened.

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Image folder not found: {directory!r}")
    return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                  if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))


def viewed_size(path):
    """(height, width) of the image file `path` as `read_image` returns it (EXIF orientation
    applied), decoded whole by Pillow: no TensorFlow work, so it may run before a
    `tf.distribute` strategy exists.

    Raises:
        ValueError: why `path` is not a readable image (not a regular file, corrupt, ...).
    """
    from PIL import Image

    problem = not_a_regular_file(path)
    if problem:
        raise ValueError(problem)
    with _pillow_errors(), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(os.fspath(path)) as image:
            image.load()  # the whole file: a truncated or corrupt one fails here
            width, height = image.size
    return (width, height) if exif_orientation(path) in (5, 6, 7, 8) else (height, width)


def list_images(directory, check=True):
    """Sorted image files of a folder; unreadable or corrupt ones are skipped with a warning.

    Only regular files count, whatever their name (a FIFO named `x.png` is skipped, never
    opened); `check=False` skips decoding every file.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: the folder holds no readable image.
    """
    directory = os.fspath(directory)
    paths = image_names(directory)
    if paths:
        with ThreadPoolExecutor(max_workers=8) as pool:
            problems = list(pool.map(lambda path: image_file_problem(path, decode=check), paths))
        for path, problem in zip(paths, problems):
            if problem:
                logger.warning("Skipping unreadable image %s: %s", path, problem)
        paths = [path for path, problem in zip(paths, problems) if not problem]
    if not paths:
        raise ValueError(
            f"No readable images ({', '.join(IMAGE_EXTENSIONS)}) in folder {directory!r}"
        )
    return paths


def load_image(path):
    """One image file as float32 [-1, 1], shape (H, W, 3), turned as its EXIF orientation says."""
    return to_minus_one_one(read_image(path))
