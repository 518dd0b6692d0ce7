"""tinynet.augment: random warps of training images, reproducible from a seed."""

import cv2
import numpy as np
import pytest

from tinynet import ops
from tinynet.augment import augment


def _mnist_like(n, seed=0):
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, 28, 28), dtype=np.float32)
    imgs[:, 6:22, 10:18] = rng.random((n, 16, 8), dtype=np.float32)
    return imgs


NO_FLOW = np.zeros((0, 2, 1, 1), dtype=np.float32)


def test_warp_identity_and_integer_shift(backend):
    imgs = _mnist_like(4)
    identity = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (4, 1, 1))
    np.testing.assert_array_equal(ops.warp_bilinear(imgs, identity, NO_FLOW, np.empty_like(imgs)),
                                  imgs)
    zero_flow = np.zeros((4, 2, 28, 28), np.float32)
    np.testing.assert_array_equal(
        ops.warp_bilinear(imgs, identity, zero_flow, np.empty_like(imgs)), imgs)
    # theta[:, 0, 2] = -3 reads from 3 pixels to the left: content moves 3 pixels right
    shift = identity.copy()
    shift[:, 0, 2] = -3
    out = ops.warp_bilinear(imgs, shift, NO_FLOW, np.empty_like(imgs))
    np.testing.assert_array_equal(out[:, :, 3:], imgs[:, :, :-3])
    assert np.all(out[:, :, :3] == 0)


@pytest.mark.parametrize("elastic", [0.0, 12.0])
def test_augment_reproducible_range_shape(elastic, backend):
    imgs = _mnist_like(16)
    a = augment(imgs, np.random.default_rng(7), elastic_alpha=elastic)
    b = augment(imgs, np.random.default_rng(7), elastic_alpha=elastic)
    c = augment(imgs, np.random.default_rng(8), elastic_alpha=elastic)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == imgs.shape and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    assert not np.array_equal(a, imgs)
    # a small warp keeps most of the ink
    assert 0.7 < a.sum() / imgs.sum() < 1.3
    four = augment(imgs[:, None], np.random.default_rng(7), elastic_alpha=elastic)
    assert four.shape == (16, 1, 28, 28)
    np.testing.assert_array_equal(four[:, 0], a)


def test_augment_identity_parameters_return_input():
    imgs = _mnist_like(5)
    out = augment(imgs, np.random.default_rng(0), max_shift=0, max_rotation=0, scale=(1, 1))
    np.testing.assert_array_equal(out, imgs)


def test_augment_rejects_bad_shape():
    with pytest.raises(ValueError):
        augment(np.zeros((28, 28)), np.random.default_rng(0))


def _bar():
    """A 3-pixel-wide vertical bar of full ink in a 28x28 image."""
    img = np.zeros((1, 28, 28), np.float32)
    img[0, 6:22, 12:15] = 1.0
    return img


def test_pen_width_adds_or_peels_one_pixel_ring(backend):
    bar = _bar()
    thick = ops.pen_width(bar, np.array([1.0], np.float32), np.empty_like(bar))
    thin = ops.pen_width(bar, np.array([-1.0], np.float32), np.empty_like(bar))
    same = ops.pen_width(bar, np.array([0.0], np.float32), np.empty_like(bar))
    assert thick.sum() == 18 * 5          # rows 5..22, columns 11..15
    assert thin.sum() == 14 * 1           # only the centre column of rows 7..20 survives
    np.testing.assert_array_equal(same, bar)
    half = ops.pen_width(bar, np.array([0.5], np.float32), np.empty_like(bar))
    assert half.sum() == (bar.sum() + thick.sum()) / 2


def test_break_strokes_cuts_a_disc_around_an_ink_pixel(backend):
    bar = _bar()
    # ink pixel number 24 of the 48 (row-major) is row 14, column 12
    out = ops.break_strokes(bar, np.array([[0.5]], np.float32), np.float32(1.0),
                            np.empty_like(bar))
    cut = np.argwhere(out[0] != bar[0])
    assert sorted(map(tuple, cut)) == [(13, 12), (14, 12), (14, 13), (15, 12)]


def test_shear_and_aspect_move_pixels_as_documented():
    from tinynet.augment import random_affine

    class Fixed:
        """A generator whose uniform draws are given: the shift (dx and dy alike), angle,
        zoom, shear, aspect."""

        def __init__(self, *values):
            self.values = list(values)

        def uniform(self, low, high, size):
            value = self.values.pop(0)
            return np.full(size, value, dtype=float)

    # slant k = 0.5: the output pixel at (u, v) reads the input at (u - 0.5 v, v)
    theta = random_affine(Fixed(0, 0, 1.0, 0.5, 1.0), 1, max_shear=0.5)[0]
    np.testing.assert_allclose(theta, [[1, -0.5, 0], [0, 1, 0]], atol=1e-7)
    # aspect r = 4: twice as wide, half as tall, so the input is read at (u / 2, 2 v)
    theta = random_affine(Fixed(0, 0, 1.0, 0.0, 4.0), 1, aspect=(4, 4))[0]
    np.testing.assert_allclose(theta, [[0.5, 0, 0], [0, 2, 0]], atol=1e-7)


def test_handwriting_augmentation_is_reproducible_and_keeps_the_digit():
    from tinynet.recipes import ROBUST_AUGMENT

    imgs = _mnist_like(32)
    a = augment(imgs, np.random.default_rng(3), **ROBUST_AUGMENT)
    b = augment(imgs, np.random.default_rng(3), **ROBUST_AUGMENT)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    ratio = a.sum(axis=(1, 2)) / imgs.sum(axis=(1, 2))
    assert 0.3 < ratio.min() and ratio.max() < 3      # thinner or thicker, never gone
    assert ratio.std() > 0.05                         # and the pen really varies


def test_thin_leaves_the_centre_line_of_a_bar(backend):
    bar = np.zeros((1, 12, 30), np.uint8)
    bar[0, 3:8, 4:26] = 1                      # 5 rows thick, 22 columns long
    line = ops.thin(bar, np.empty_like(bar))[0]
    rows, cols = np.nonzero(line)
    assert set(rows) == {5}                    # the middle row, one pixel thick
    assert cols.min() <= 7 and cols.max() >= 22 and len(cols) == cols.max() - cols.min() + 1


def test_thin_keeps_a_ring_closed(backend):
    yy, xx = np.mgrid[0:32, 0:32]
    radius = np.hypot(yy - 15.5, xx - 15.5)
    ring = ((radius > 8) & (radius < 12)).astype(np.uint8)[None]
    path = ops.thin(ring, np.empty_like(ring))[0]
    count, _ = cv2.connectedComponents(1 - path, connectivity=4)
    assert count == 3                          # outside, path and hole: still a loop
    assert np.all(np.abs(radius[path == 1] - 10) < 1.6)


def test_redraw_with_pen_gives_an_mnist_style_digit_of_the_same_shape():
    from tinynet.augment import redraw_with_pen

    yy, xx = np.mgrid[0:28, 0:28]
    radius = np.hypot((yy - 14) / 1.4, xx - 14)
    zero = np.clip(1.6 - np.abs(radius - 5.5), 0, 1).astype(np.float32)   # an oval "0"
    blank = np.zeros((28, 28), np.float32)
    out = redraw_with_pen(np.stack([zero, blank]), np.random.default_rng(0))
    again = redraw_with_pen(np.stack([zero, blank]), np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(out[1], blank)           # nothing to redraw
    rows, cols = np.nonzero(out[0] > 0.1)
    assert rows.max() - rows.min() + 1 in (20, 21)         # MNIST's 20-pixel box, tallest side
    assert out[0][14, 14] < 0.1 and out[0].max() == 1.0    # the hole stays open
    assert abs(float((out[0] * np.arange(28)[:, None]).sum() / out[0].sum()) - 14) < 1


def test_rerender_gives_the_image_the_reader_would_see_in_a_file():
    from tinynet.augment import rerender
    from tinynet.vision import render_digit

    bar = np.zeros((2, 28, 28), np.float32)
    bar[0, 4:24, 12:15] = 1.0                     # a "1": 20 rows, 3 columns
    out = rerender(bar, np.random.default_rng(0), sides=(56, 56))
    expected = render_digit(cv2.resize(bar[0], (56, 56), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_array_equal(out[0], expected)
    np.testing.assert_array_equal(out[1], bar[1])          # no ink: left as it was
    rows = np.flatnonzero(out[0].max(axis=1) > 0.1)
    assert rows.max() - rows.min() + 1 in (20, 21)
