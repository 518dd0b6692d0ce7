"""Tests for tinynet.imagefile: image files of every format to a safe grey array, and the
clear errors (naming the file) for everything else."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from conftest import encoded, png_bytes, seven

from tinynet import imagefile
from tinynet.errors import ImageError

# -- load_image: good files ----------------------------------------------------------------------

@pytest.mark.parametrize("name, image, params", [
    ("gray.png", seven(60), []),
    ("rgb.png", cv2.cvtColor(seven(60), cv2.COLOR_GRAY2BGR), []),
    ("photo.jpg", seven(60), [cv2.IMWRITE_JPEG_QUALITY, 95]),
    ("paint.bmp", cv2.cvtColor(seven(60), cv2.COLOR_GRAY2BGR), []),
    ("scan.tif", seven(60), []),
    ("deep.png", seven(60).astype(np.uint16) * 257, []),
    ("deep.tif", seven(60).astype(np.uint16) * 257, []),
])
def test_load_image_formats(tmp_path, name, image, params):
    path = tmp_path / name
    assert cv2.imwrite(str(path), image, params)
    loaded = imagefile.load_image(path)
    assert loaded.shape == (60, 60) and loaded.dtype == np.float32
    assert 0 <= loaded.min() and loaded.max() <= 1
    np.testing.assert_allclose(loaded, seven(60) / 255, atol=0.08)


def test_load_image_rgba_transparent_background_becomes_white(tmp_path):
    ink = 255 - seven(60)                       # 255 where the pen drew
    bgra = np.zeros((60, 60, 4), np.uint8)
    bgra[:, :, :3] = 20                          # dark pen colour everywhere ...
    bgra[:, :, 3] = ink                          # ... but only opaque where the pen drew
    path = tmp_path / "canvas.png"
    cv2.imwrite(str(path), bgra)
    loaded = imagefile.load_image(path)
    assert loaded[0, 0] == pytest.approx(1.0)    # transparent -> white
    assert loaded[ink == 255].max() < 0.1        # pen stays dark


def test_load_image_white_pen_on_transparent_is_not_lost(tmp_path):
    bgra = np.zeros((60, 60, 4), np.uint8)
    bgra[:, :, :3] = 255
    bgra[:, :, 3] = 255 - seven(60)
    path = tmp_path / "white-pen.png"
    cv2.imwrite(str(path), bgra)
    loaded = imagefile.load_image(path)
    drawn = seven(60) == 0
    assert loaded[drawn].min() > 0.9 and loaded[0, 0] < 0.1     # white pen on black


def test_load_image_multipage_tiff_reads_first_page(tmp_path):
    path = tmp_path / "pages.tif"
    assert cv2.imwritemulti(str(path), [seven(40), np.zeros((40, 40), np.uint8)])
    np.testing.assert_allclose(imagefile.load_image(path), seven(40) / 255, atol=1e-6)


def test_load_image_animated_gif_reads_first_frame(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "anim.gif"
    frames = [pil.fromarray(seven(40)), pil.fromarray(np.zeros((40, 40), np.uint8))]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    loaded = imagefile.load_image(path)
    assert loaded.shape == (40, 40) and loaded.mean() > 0.5     # the white first frame


# -- load_image: bad files ------------------------------------------------------------------

def encoded_seven(ext, image=None):
    return encoded(ext, seven(60) if image is None else image)



@pytest.mark.parametrize("name, content, reason", [
    ("empty.png", b"", "empty file"),
    ("notes.png", b"these are my notes, not a picture\n", "not an image"),
    ("cut.png", encoded_seven(".png")[:-40], "truncated PNG"),
    ("cut.jpg", encoded_seven(".jpg")[: len(encoded_seven(".jpg")) // 2], "truncated JPEG"),
    ("zero.png", png_bytes(0, 10), "0 pixels"),
    ("huge.png", png_bytes(30000, 30000, zlib.compress(b"\x00" * 1000)), "too large"),
    ("garbage.png", png_bytes(20, 20, b"not zlib data"), "cannot decode"),
    ("header.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "truncated JPEG"),
])
def test_load_image_bad_files_name_the_file_and_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        imagefile.load_image(path)
    assert name in str(info.value) and reason in str(info.value)


def test_load_image_missing_path(tmp_path):
    with pytest.raises(ImageError, match="nope.png: no such file"):
        imagefile.load_image(tmp_path / "nope.png")


def test_load_image_directory(tmp_path):
    with pytest.raises(ImageError, match="is a directory"):
        imagefile.load_image(tmp_path)


def test_load_image_huge_jpeg_header_is_refused_before_decoding(tmp_path):
    data = bytearray(encoded_seven(".jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)   # 4.2 gigapixels
    path = tmp_path / "giant.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="giant.jpg: image of 65000x65000 pixels is too large"):
        imagefile.load_image(path)


def test_huge_image_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    """The memory bound: 30000x30000 is refused before any pixel buffer is allocated."""
    path = tmp_path / "huge.png"
    path.write_bytes(png_bytes(30000, 30000, zlib.compress(b"\x00" * 1000)))

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the decoder was called for a huge image")

    monkeypatch.setattr(cv2, "imdecode", must_not_decode)
    with pytest.raises(ImageError, match=r"huge.png: image of 30000x30000 pixels is too large"):
        imagefile.load_image(path)
    assert imagefile.MAX_PIXELS * 20 <= 600 * 1024 ** 2   # the documented bound: about 0.5 GB
