"""Tests for reading image files (tinynet.imagefile) and MNIST-style rendering (tinynet.vision),
through the one reading path, tinynet.read."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from conftest import encoded, png_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet
from tinynet import imagefile, vision
from tinynet.errors import ImageError

# -- drawing helpers ---------------------------------------------------------------------------

def seven(size=200, width=12, dark_on_light=True):
    """A 7 drawn with a pen on a square canvas, uint8."""
    canvas = np.zeros((size, size), np.uint8)
    s = size / 200
    points = np.array([[50, 40], [150, 40], [85, 170]]) * s
    cv2.polylines(canvas, [points.astype(np.int32)], False, 255, max(1, round(width * s)),
                  cv2.LINE_AA)
    return 255 - canvas if dark_on_light else canvas


def number_image(digits="10", height=120, width_per_digit=90, pen=9, gap=20):
    """A light-on-dark image of a number made of 1s, 0s and 7s, drawn left to right."""
    canvas = np.zeros((height, gap + len(digits) * (width_per_digit + gap)), np.uint8)
    for i, d in enumerate(digits):
        x = gap + i * (width_per_digit + gap)
        top, bottom, mid = 15, height - 15, x + width_per_digit // 2
        if d == "1":
            cv2.line(canvas, (mid, top), (mid - 5, bottom), 255, pen)
        elif d == "0":
            cv2.ellipse(canvas, (mid, height // 2), (width_per_digit // 2 - 10,
                        (bottom - top) // 2), 0, 0, 360, 255, pen)
        elif d == "7":
            pts = np.array([[x + 5, top], [x + width_per_digit - 5, top], [mid - 10, bottom]])
            cv2.polylines(canvas, [pts.astype(np.int32)], False, 255, pen)
    return canvas


class SameForAll:
    """A stand-in model giving every image the same probabilities, so the reader never cuts a
    glyph (a cut reading multiplies more probabilities below 1) and never needs weights."""

    def predict(self, images):
        probs = np.full((len(images), 10), 0.05, np.float32)
        probs[:, 3] = 0.55
        return probs


def to_mnist(image):
    """The 28x28 picture the network sees for an image of one digit, via tinynet.read."""
    reading = tinynet.read(image, SameForAll())
    assert len(reading.digits) == 1, reading.text
    return reading.digits[0].image


def numbers(image, model=None):
    """The 28x28 pictures of every digit tinynet.read finds, in reading order."""
    return [d.image for d in tinynet.read(image, model or SameForAll()).digits]


def centre_of_mass(image):
    rows, cols = np.indices(image.shape)
    total = image.sum()
    return (rows * image).sum() / total, (cols * image).sum() / total


def bbox_longer_side(image, level=0.05):
    ys, xs = np.nonzero(image > level)
    return max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)


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
    assert to_mnist(loaded).max() == pytest.approx(1.0)


def test_load_image_white_pen_on_transparent_is_not_lost(tmp_path):
    bgra = np.zeros((60, 60, 4), np.uint8)
    bgra[:, :, :3] = 255
    bgra[:, :, 3] = 255 - seven(60)
    path = tmp_path / "white-pen.png"
    cv2.imwrite(str(path), bgra)
    assert to_mnist(imagefile.load_image(path)).sum() > 10


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


# -- to_mnist ----------------------------------------------------------------------------

@pytest.mark.parametrize("image", [seven(200), seven(28, width=2), seven(500, width=40),
                                   seven(64, dark_on_light=False)])
def test_to_mnist_is_mnist_shaped(image):
    out = to_mnist(image)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() == pytest.approx(1.0)
    row, col = centre_of_mass(out)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1
    assert 19 <= bbox_longer_side(out) <= 21
    assert out[0].max() == 0 and out[:, 0].max() == 0         # black border, white digit


def test_to_mnist_polarity_does_not_matter():
    dark = to_mnist(seven(200, dark_on_light=True))
    light = to_mnist(seven(200, dark_on_light=False))
    assert np.abs(dark - light).mean() < 0.02


def test_to_mnist_thickens_a_one_pixel_pen():
    canvas = np.full((28, 28), 255, np.uint8)
    cv2.polylines(canvas, [np.array([[8, 6], [20, 6], [12, 22]], np.int32)], False, 0, 1)
    out = to_mnist(canvas)
    width_at_20px = vision.stroke_width(cv2.resize(out, (112, 112))) / 4
    assert width_at_20px > 1.8


def test_to_mnist_survives_uneven_light_and_noise():
    rng = np.random.default_rng(0)
    image = seven(300).astype(np.float32) / 255
    light = np.linspace(1.0, 0.45, 300, dtype=np.float32)[None, :]
    photo = np.clip(image * light + rng.normal(0, 0.03, image.shape), 0, 1)
    ok, buf = cv2.imencode(".jpg", (photo * 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, 60])
    out = to_mnist(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    clean = to_mnist(seven(300))
    assert np.abs(out - clean).mean() < 0.08
    assert np.corrcoef(out.ravel(), clean.ravel())[0, 1] > 0.9


def test_to_mnist_keeps_a_clean_mnist_digit():
    digit = cv2.resize(seven(200, width=26, dark_on_light=False), (20, 20),
                       interpolation=cv2.INTER_AREA)
    mnist_like = vision._centre_by_mass(digit.astype(np.float32) / 255)
    out = to_mnist(mnist_like)
    shifted = [np.abs(np.roll(out, (dy, dx), axis=(0, 1)) - mnist_like).mean()
               for dy in (-1, 0, 1) for dx in (-1, 0, 1)]   # centring may round differently
    assert min(shifted) < 0.05


@pytest.mark.parametrize("blank", [np.zeros((50, 50)), np.full((40, 30), 255, np.uint8),
                                   np.full((28, 28, 3), 0.5), np.ones((1, 1), bool)])
def test_to_mnist_blank_says_no_digit_found(blank):
    with pytest.raises(ImageError, match="no digit found"):
        to_mnist(blank)


@pytest.mark.parametrize("bad", [np.zeros((0, 5)), np.zeros(10), np.zeros((5, 5, 5)),
                                 np.zeros((2, 3, 4, 5)), np.array([["a"]]),
                                 np.full((5, 5), np.nan), np.zeros((4, 4), complex)])
def test_to_mnist_rejects_unusable_arrays_with_image_error(bad):
    with pytest.raises(ImageError):
        to_mnist(bad)


# -- numbers: several digits ---------------------------------------------------------

def test_split_digits_count_and_order():
    digits = numbers(number_image("1070"))
    assert len(digits) == 4
    ink = [d.sum() for d in digits]
    assert ink[0] == min(ink)                   # the 1 has least ink, and it comes first
    assert ink[1] > ink[2] and ink[3] > ink[2]  # 0s have more ink than the 7 between them
    for d in digits:
        assert d.shape == (28, 28) and d.dtype == np.float32


def test_split_digits_merges_a_broken_stroke():
    image = number_image("77")
    image[60:64, :] = 0                         # cut both 7s in two horizontally
    assert len(numbers(image)) == 2


def test_split_digits_splits_touching_digits():
    assert tinynet.read(number_image("00", gap=-8)).text == "00"


def test_split_digits_dark_on_light_and_specks():
    image = 255 - number_image("107")
    image[5, 5] = image[100, 300] = 0           # dust
    assert len(numbers(image)) == 3


def test_split_digits_blank():
    with pytest.raises(ImageError, match="no digit found"):
        numbers(np.full((50, 200), 255, np.uint8))


# -- property: never crashes -------------------------------------------------------------

dtypes = st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.bool_])
shapes = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=300),
    st.tuples(st.integers(1, 300), st.integers(1, 300), st.sampled_from([1, 3, 4])))


@st.composite
def arrays(draw):
    dtype, shape = draw(dtypes), draw(shapes)
    if dtype in (np.float32, np.float64):
        elements = st.floats(-1e6, 1e6, width=32 if dtype == np.float32 else 64)
    else:
        elements = None
    kind = draw(st.sampled_from(["random", "constant", "digit"]))
    if kind == "random":
        return draw(hnp.arrays(dtype, shape, elements=elements))
    if kind == "constant":
        return np.full(shape, draw(hnp.from_dtype(np.dtype(dtype), allow_nan=False,
                                                  allow_infinity=False)), dtype)
    base = cv2.resize(seven(60), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    base = base.reshape(shape[:2] + (1,) * (len(shape) - 2))
    return np.broadcast_to(base, shape).astype(dtype)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(arrays())
def test_reading_any_array_never_crashes(image):
    try:
        reading = tinynet.read(image, SameForAll())
    except ImageError as exc:
        assert str(exc)
        return
    assert reading.digits
    for digit in reading.digits:
        out = digit.image
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
        x0, y0, x1, y1 = digit.box
        assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(arrays())
def test_split_digits_never_crashes(image):
    try:
        digits = numbers(image)
    except ImageError:
        return
    for d in digits:
        assert d.shape == (28, 28) and d.dtype == np.float32 and 0 <= d.min() <= d.max() <= 1
