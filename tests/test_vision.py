"""Tests for tinynet.vision: finding the ink and rendering digits MNIST-style, checked through
the one reading path, tinynet.read (image files: test_imagefile.py; layout: test_reader.py)."""


import cv2
import numpy as np
import pytest
from conftest import seven
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet
from tinynet import vision
from tinynet.errors import ImageError

# -- drawing helpers ---------------------------------------------------------------------------

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


# -- one digit, rendered MNIST-style -------------------------------------------------

@pytest.mark.parametrize("image", [seven(200), seven(28, width=2), seven(500, width=40),
                                   seven(64, dark_on_light=False)])
def test_rendering_is_mnist_shaped(image):
    out = to_mnist(image)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() == pytest.approx(1.0)
    row, col = centre_of_mass(out)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1
    assert 19 <= bbox_longer_side(out) <= 21
    assert out[0].max() == 0 and out[:, 0].max() == 0         # black border, white digit


def test_rendering_polarity_does_not_matter():
    dark = to_mnist(seven(200, dark_on_light=True))
    light = to_mnist(seven(200, dark_on_light=False))
    assert np.abs(dark - light).mean() < 0.02


def test_rendering_thickens_a_one_pixel_pen():
    canvas = np.full((28, 28), 255, np.uint8)
    cv2.polylines(canvas, [np.array([[8, 6], [20, 6], [12, 22]], np.int32)], False, 0, 1)
    out = to_mnist(canvas)
    width_at_20px = vision.stroke_width(cv2.resize(out, (112, 112))) / 4
    assert width_at_20px > 1.8


def test_rendering_survives_uneven_light_and_noise():
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


def test_rendering_keeps_a_clean_mnist_digit():
    digit = cv2.resize(seven(200, width=26, dark_on_light=False), (20, 20),
                       interpolation=cv2.INTER_AREA)
    mnist_like = vision._centre_by_mass(digit.astype(np.float32) / 255)
    out = to_mnist(mnist_like)
    shifted = [np.abs(np.roll(out, (dy, dx), axis=(0, 1)) - mnist_like).mean()
               for dy in (-1, 0, 1) for dx in (-1, 0, 1)]   # centring may round differently
    assert min(shifted) < 0.05


@pytest.mark.parametrize("blank", [np.zeros((50, 50)), np.full((40, 30), 255, np.uint8),
                                   np.full((28, 28, 3), 0.5), np.ones((1, 1), bool)])
def test_rendering_blank_says_no_digit_found(blank):
    with pytest.raises(ImageError, match="no digit found"):
        to_mnist(blank)


@pytest.mark.parametrize("bad", [np.zeros((0, 5)), np.zeros(10), np.zeros((5, 5, 5)),
                                 np.zeros((2, 3, 4, 5)), np.array([["a"]]),
                                 np.full((5, 5), np.nan), np.zeros((4, 4), complex)])
def test_rendering_rejects_unusable_arrays_with_image_error(bad):
    with pytest.raises(ImageError):
        to_mnist(bad)


# -- numbers: several digits ---------------------------------------------------------

def test_numbers_count_and_order():
    digits = numbers(number_image("1070"))
    assert len(digits) == 4
    ink = [d.sum() for d in digits]
    assert ink[0] == min(ink)                   # the 1 has least ink, and it comes first
    assert ink[1] > ink[2] and ink[3] > ink[2]  # 0s have more ink than the 7 between them
    for d in digits:
        assert d.shape == (28, 28) and d.dtype == np.float32


def test_numbers_merges_a_broken_stroke():
    image = number_image("77")
    image[60:63, :] = 0                         # a pen skip cuts both 7s in two
    assert len(numbers(image)) == 2


def test_numbers_splits_touching_digits():
    assert tinynet.read(number_image("00", gap=-8)).text == "00"


def test_numbers_dark_on_light_and_specks():
    image = 255 - number_image("107")
    image[5, 5] = image[100, 300] = 0           # dust
    assert len(numbers(image)) == 3


def test_numbers_blank():
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
def test_numbers_never_crashes(image):
    try:
        digits = numbers(image)
    except ImageError:
        return
    for d in digits:
        assert d.shape == (28, 28) and d.dtype == np.float32 and 0 <= d.min() <= d.max() <= 1
