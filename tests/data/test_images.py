import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import fifo_nobody_may_read, image_folder

from tf_cyclegan.data.images import (
    IMAGE_EXTENSIONS,
    decode_image,
    describe_error,
    exif_orientation,
    list_images,
    read_image,
    read_oriented,
    to_minus_one_one,
    to_uint8,
)
from tf_cyclegan.data.unpaired import make_unpaired_dataset, resize_to_load_size


def test_decodes_grey_alpha_sixteen_bit_jpeg_bmp_and_gif(tmp_path):
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 16
    rgba = np.dstack([np.full((4, 4, 3), 200, np.uint8), np.zeros((4, 4, 1), np.uint8)])
    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4, 1) * 4096).repeat(3, axis=2)
    cases = {
        "grey.png": (tf.io.encode_png(grey), np.repeat(grey, 3, axis=2)),
        "rgba.png": (tf.io.encode_png(rgba), rgba[..., :3]),
        "deep.png": (tf.io.encode_png(deep), (deep >> 8).astype(np.uint8)),
    }
    for name, (encoded, expected) in cases.items():
        np.testing.assert_array_equal(decode_image(encoded).numpy(), expected, err_msg=name)
    jpeg = decode_image(tf.io.encode_jpeg(np.full((8, 8, 3), 120, np.uint8), quality=100)).numpy()
    assert jpeg.shape == (8, 8, 3) and np.abs(jpeg.astype(int) - 120).max() <= 2
    # A 2x1 24-bit BMP and a 1x1 GIF, written byte by byte (TF encodes neither).
    bmp = (b"BM" + (62).to_bytes(4, "little") + b"\0\0\0\0" + (54).to_bytes(4, "little")
           + (40).to_bytes(4, "little") + (2).to_bytes(4, "little") + (1).to_bytes(4, "little")
           + (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + b"\0" * 24
           + bytes([255, 0, 0, 0, 0, 255]) + b"\0\0")
    np.testing.assert_array_equal(decode_image(bmp).numpy(), [[[0, 0, 255], [255, 0, 0]]])
    gif = (b"GIF89a" + bytes.fromhex("0100 0100 80 00 00") + bytes.fromhex("000000 ffffff")
           + bytes.fromhex("21f904 01 0000 00 00") + bytes.fromhex("2c 0000 0000 0100 0100 00")
           + bytes.fromhex("02 02 4401 00") + b";")
    assert decode_image(gif).numpy().shape == (1, 1, 3)


def test_corrupt_and_non_image_files_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    folder = image_folder(tmp_path, "trainA", 2)
    (folder / "notes.png").write_text("not an image")
    good = (folder / "0.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "readme.txt").write_text("ignored: not an image extension")
    with caplog.at_level(logging.WARNING):
        paths = list_images(folder)
    assert [os.path.basename(p) for p in paths] == ["0.png", "1.png"]
    assert "notes.png" in caplog.text and "truncated.png" in caplog.text
    assert "readme.txt" not in caplog.text


def _photo_with_orientation(path, orientation):
    """A 4x6 JPEG-free test image (PNG keeps the pixels exact) whose EXIF says `orientation`."""
    from PIL import Image

    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 2
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    return pixels


# EXIF orientation -> how every viewer turns the stored pixels.
ORIENTATIONS = {
    1: lambda p: p,
    2: lambda p: p[:, ::-1],
    3: lambda p: p[::-1, ::-1],
    4: lambda p: p[::-1],
    5: lambda p: p.transpose(1, 0, 2),
    6: lambda p: np.rot90(p, k=-1),  # stored rotated; viewed turned 90 degrees clockwise
    7: lambda p: np.rot90(p, k=-1)[::-1],
    8: lambda p: np.rot90(p, k=1),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied_as_pillow_shows_the_photo(tmp_path, orientation):
    from PIL import Image, ImageOps

    pixels = _photo_with_orientation(tmp_path / "photo.png", orientation)
    with Image.open(tmp_path / "photo.png") as photo:
        viewed = np.asarray(ImageOps.exif_transpose(photo))  # what every viewer shows
    np.testing.assert_array_equal(viewed, ORIENTATIONS[orientation](pixels))
    np.testing.assert_array_equal(read_image(tmp_path / "photo.png").numpy(), viewed)


@pytest.mark.parametrize("cache", [True, False])
def test_the_training_pipeline_turns_every_exif_orientation_as_pillow_shows_it(tmp_path, cache):
    """One photo per orientation in each domain, read in order (no shuffle): each is resized to a
    square as it is viewed, not as it is stored; not cropped, not flipped."""
    from PIL import Image, ImageOps

    viewed = []
    for domain in ("a", "b"):
        os.makedirs(tmp_path / domain)
        for orientation in sorted(ORIENTATIONS):
            _photo_with_orientation(tmp_path / domain / f"{orientation}.png", orientation)
    for orientation in sorted(ORIENTATIONS):
        with Image.open(tmp_path / "a" / f"{orientation}.png") as photo:
            viewed.append(np.asarray(ImageOps.exif_transpose(photo)))
    dataset = make_unpaired_dataset(tmp_path / "a", tmp_path / "b", load_size=8, crop_size=8, flip=False,
                                    cache=cache, shuffle=False, seed=0)
    batches = [real_a[0].numpy() for real_a, _ in dataset]
    assert len(batches) == len(ORIENTATIONS)
    for orientation, view, got in zip(sorted(ORIENTATIONS), viewed, batches):
        expected = to_minus_one_one(resize_to_load_size(tf.constant(view), 8)).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=f"orientation {orientation}")


def test_webp_files_are_read(tmp_path):
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.webp", lossless=True)
    assert list_images(tmp_path) == [str(tmp_path / "x.webp")]
    np.testing.assert_array_equal(read_image(tmp_path / "x.webp").numpy(), pixels)


def test_a_jpeg_photos_orientation_is_read_from_its_exif_block_without_opening_the_image(tmp_path, monkeypatch):
    from PIL import Image, ImageOps

    pixels = np.zeros((16, 40, 3), np.uint8)
    pixels[:, :8] = 255  # a white band on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: view rotated 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(tmp_path / "phone.jpg") as photo:
        viewed = np.asarray(ImageOps.exif_transpose(photo)).astype(int)
    # Pillow would refuse to open a photo this size if it were huge; the tag is read without it.
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: (_ for _ in ()).throw(Image.DecompressionBombError()))
    ours = read_image(tmp_path / "phone.jpg").numpy().astype(int)
    assert ours.shape == viewed.shape == (40, 16, 3)
    assert np.abs(ours - viewed).max() <= 8  # two JPEG decoders
    assert ours[:8].mean() > 200 and ours[-8:].mean() < 50  # the band is at the top when viewed


def test_pixels_go_to_minus_one_one_and_back_exactly_and_are_clipped():
    pixels = np.arange(256, dtype=np.uint8)
    scaled = to_minus_one_one(pixels).numpy()
    assert scaled.dtype == np.float32 and scaled[0] == -1.0 and scaled[-1] == 1.0
    np.testing.assert_array_equal(to_uint8(scaled).numpy(), pixels)
    np.testing.assert_array_equal(to_uint8(np.array([-3.0, 3.0, 0.0])).numpy(), [0, 255, 128])


def test_a_decoding_error_is_described_in_one_line_without_tensorflows_decorations():
    with pytest.raises(tf.errors.OpError) as caught:
        decode_image(b"not an image at all")
    message = describe_error(caught.value)
    assert message and "\n" not in message and "{{" not in message and "[Op:" not in message
    assert describe_error(ValueError()) == "ValueError"


def _scene(height=16, width=24):
    """A small RGB test image: smooth ramps (kind to JPEG) under flat blocks of distinct colours."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height - 2)], -1)
    image[2:7, 3:9] = (200, 30, 30)
    image[9:14, 12:20] = (20, 40, 220)
    return image.astype(np.uint8)


def _rgba():
    return np.dstack([_scene(), np.tile(np.linspace(0, 255, 24, dtype=np.uint8), (16, 1))])


def _palette(transparent=False):
    from PIL import Image

    image = Image.fromarray(_scene()).quantize(16)
    if transparent:
        image.info["transparency"] = 3
    return image


def _frames(mode):
    from PIL import Image

    frames = [Image.fromarray(np.roll(_scene(), 5 * i, axis=1)) for i in range(3)]
    return [frame.quantize(16) for frame in frames] if mode == "P" else frames


def _rotated_exif():
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # view it rotated 90 degrees clockwise
    return exif.tobytes()


def _save(**options):
    return lambda image, path: image.save(path, **options)


def _pillow(array_or_image, save):
    from PIL import Image

    def write(path):
        image = array_or_image() if callable(array_or_image) else array_or_image
        save(image if isinstance(image, Image.Image) else Image.fromarray(image), path)
    return write


def _tf_png(pixels):
    return lambda path: tf.io.write_file(str(path), tf.io.encode_png(pixels))


# name -> writer of that file; every extension of IMAGE_EXTENSIONS has cases.
_FORMAT_CASES = {
    "rgb.png": _pillow(_scene, _save()),
    "grey.png": _pillow(lambda: _scene()[..., 0], _save()),
    "grey_alpha.png": _pillow(lambda: _rgba()[..., [0, 3]], _save()),
    "rgba.png": _pillow(_rgba, _save()),
    "bilevel.png": _pillow(lambda: _scene()[..., 0] > 100, _save()),
    "palette.png": _pillow(_palette, _save()),
    "palette_transparent.png": _pillow(lambda: _palette(True), _save(transparency=3)),
    "grey16.png": _tf_png(_scene()[..., :1].astype(np.uint16) * 257 + 7),
    "rgb16.png": _tf_png(_scene().astype(np.uint16) * 257 + 7),
    "rotated.png": _pillow(_scene, _save(exif=_rotated_exif())),
    "rgb.jpg": _pillow(_scene, _save(quality=95)),
    "grey.jpeg": _pillow(lambda: _scene()[..., 1], _save(quality=95)),
    "cmyk.jpg": _pillow(lambda: Image_convert(_scene(), "CMYK"), _save(quality=95)),
    "rotated.jpg": _pillow(_scene, _save(quality=95, exif=_rotated_exif())),
    "rgb.bmp": _pillow(_scene, _save()),
    "rgba.bmp": _pillow(_rgba, _save()),
    "palette.bmp": _pillow(_palette, _save()),
    "grey.bmp": _pillow(lambda: _scene()[..., 2], _save()),
    "bilevel.bmp": _pillow(lambda: _scene()[..., 0] > 100, _save()),
    "palette.gif": _pillow(_palette, _save()),
    "palette_transparent.gif": _pillow(lambda: _palette(True), _save(transparency=3)),
    "grey.gif": _pillow(lambda: _scene()[..., 0], _save()),
    "animated.gif": _pillow(lambda: _frames("P")[0], lambda first, path: first.save(
        path, save_all=True, append_images=_frames("P")[1:], duration=100, loop=0)),
    "lossless.webp": _pillow(_scene, _save(lossless=True)),
    "lossy.webp": _pillow(_scene, _save(quality=90)),
    "rgba.webp": _pillow(_rgba, _save(lossless=True)),
    "rotated.webp": _pillow(_scene, _save(lossless=True, exif=_rotated_exif())),
    "animated.webp": _pillow(lambda: _frames("RGB")[0], lambda first, path: first.save(
        path, save_all=True, append_images=_frames("RGB")[1:], duration=100, loop=0, lossless=True)),
}


def Image_convert(pixels, mode):  # noqa: N802 - reads as Pillow's own call
    from PIL import Image

    return Image.fromarray(pixels).convert(mode)


def _as_pillow_shows(path):
    """Pillow's decoding of `path`, converted to RGB the documented way (docs/training.md):
    the first frame, turned by its EXIF orientation, `convert("RGB")`; 16-bit grey scaled to 8
    bits (Pillow's own conversion clips it)."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I"):
            return np.repeat((np.asarray(image) >> 8).astype(np.uint8)[..., None], 3, axis=2)
        return np.asarray(image.convert("RGB"))


def test_every_listed_format_has_a_decoding_case():
    assert {os.path.splitext(name)[1] for name in _FORMAT_CASES} == set(IMAGE_EXTENSIONS)


@pytest.mark.parametrize("name", sorted(_FORMAT_CASES))
def test_every_format_decodes_to_the_pixels_pillow_shows(tmp_path, name):
    """Our decoder, eagerly (translation, evaluation) and inside `tf.data` as training reads a
    file (`read_oriented`), against Pillow's decoding of the same file; an animation is its
    first frame."""
    path = tmp_path / name
    _FORMAT_CASES[name](path)
    expected = _as_pillow_shows(path).astype(int)
    assert list_images(tmp_path) == [str(path)]
    eager = read_image(path).numpy()
    in_pipeline = next(iter(tf.data.Dataset.from_tensors((str(path), exif_orientation(str(path)))).map(
        read_oriented))).numpy()
    for ours in (eager, in_pipeline):
        assert ours.dtype == np.uint8 and ours.shape == expected.shape, name
        # Both JPEG decoders run libjpeg's accurate IDCT (exact here); one level allows another build's rounding.
        tolerance = 1 if name.endswith((".jpg", ".jpeg")) else 0
        np.testing.assert_allclose(ours, expected, atol=tolerance, rtol=0, err_msg=name)


def test_only_regular_files_are_images_a_fifo_is_skipped_by_name_never_opened(tmp_path, caplog):
    folder = image_folder(tmp_path, "trainA", 1)
    (folder / "folder.png").mkdir()
    with fifo_nobody_may_read(folder / "pipe.png"), caplog.at_level(logging.WARNING):
        assert list_images(folder) == [str(folder / "0.png")]
        assert list_images(folder, check=False) == [str(folder / "0.png")]
        with pytest.raises(ValueError, match=r"pipe\.png: not a regular file \(a FIFO\)"):
            read_image(folder / "pipe.png")
    assert "pipe.png: not a regular file (a FIFO)" in caplog.text
    assert "folder.png: not a regular file (a folder)" in caplog.text
