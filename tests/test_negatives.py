"""Tests for tinynet.negatives: "not a digit" glyphs, MNIST-style, reproducible by seed."""

import cv2
import numpy as np
import pytest

from tinynet import negatives


def only(kind, monkeypatch):
    """Make draw() produce a single kind."""
    monkeypatch.setattr(negatives, "KINDS", {kind: 1.0})


def ink_box(image, level=0.1):
    """(rows, cols) spanned by the ink."""
    rows = np.flatnonzero(image.max(1) > level)
    cols = np.flatnonzero(image.max(0) > level)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(image):
    total = image.sum()
    rows, cols = np.mgrid[0:28, 0:28]
    return (rows * image).sum() / total, (cols * image).sum() / total


@pytest.fixture(scope="module")
def digits():
    """Stand-in MNIST digits: thick anti-aliased 0s, 4s and 7s (no download needed)."""
    out = np.zeros((3, 28, 28), np.uint8)
    cv2.ellipse(out[0], (14, 14), (6, 9), 0, 0, 360, 255, 3, cv2.LINE_AA)
    cv2.polylines(out[1], [np.array([[17, 23], [17, 5], [8, 17], [21, 17]])], False, 255, 3,
                  cv2.LINE_AA)
    cv2.polylines(out[2], [np.array([[8, 5], [20, 5], [12, 23]])], False, 255, 3, cv2.LINE_AA)
    return out.astype(np.float32) / 255


def test_draw_returns_n_mnist_sized_float32_images_in_unit_range(digits):
    images = negatives.draw(40, np.random.default_rng(0), digits)
    assert images.shape == (40, 28, 28)
    assert images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0


def test_draw_of_zero_images_is_empty():
    assert negatives.draw(0, np.random.default_rng(0)).shape == (0, 28, 28)


def test_same_seed_reproduces_the_images_exactly(digits):
    first = negatives.draw(30, np.random.default_rng(5), digits)
    again = negatives.draw(30, np.random.default_rng(5), digits)
    np.testing.assert_array_equal(first, again)


def test_different_seeds_give_different_images(digits):
    first = negatives.draw(30, np.random.default_rng(5), digits)
    other = negatives.draw(30, np.random.default_rng(6), digits)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("kind", ["letter", "symbol", "doodle", "scribble", "partial"])
def test_each_kind_alone_draws_centred_mnist_style_ink(kind, digits, monkeypatch):
    only(kind, monkeypatch)
    images = negatives.draw(25, np.random.default_rng(1), digits)
    for image in images:
        assert image.max() == pytest.approx(1.0)
        row, col = centre_of_mass(image)
        assert abs(row - 14) <= 1.5 and abs(col - 14) <= 1.5
        assert max(ink_box(image)) <= 21          # the longer side fits MNIST's 20 px box
        # nearly all ink in the central 20x20 box (centring by mass may push a lopsided
        # glyph's thin end, the dot of a "?", a little outward, as it does for digits)
        assert image[4:24, 4:24].sum() >= 0.9 * image.sum()


def test_partial_kind_is_left_out_without_digits(monkeypatch):
    monkeypatch.setattr(negatives, "KINDS", {"partial": 1.0, "letter": 1e-9})
    calls = []
    monkeypatch.setattr(negatives, "_partial_glyphs", lambda *a: calls.append(a) or [])
    images = negatives.draw(10, np.random.default_rng(2))
    assert images.shape == (10, 28, 28) and images.reshape(10, -1).max(1).min() == 1.0
    assert calls == []


def test_partial_pieces_are_never_a_thin_vertical_stroke(digits, monkeypatch):
    only("partial", monkeypatch)
    for image in negatives.draw(60, np.random.default_rng(3), digits):
        height, width = ink_box(image)
        assert width >= 0.4 * height


def test_partial_piece_keeps_between_30_and_60_percent_of_the_ink(digits):
    pieces = negatives._cut_digits(np.repeat(digits, 20, axis=0), np.random.default_rng(4))
    kept = pieces.sum((1, 2)) / np.repeat(digits, 20, axis=0).sum((1, 2))
    assert kept.min() >= 0.28 and kept.max() <= 0.62


def test_thin_vertical_bar_is_recognised_as_a_one():
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 12:16] = 1.0
    square = np.zeros((28, 28), np.float32)
    square[4:24, 4:24] = 1.0
    assert negatives.looks_like_a_one(bar)
    assert not negatives.looks_like_a_one(square)


def test_letters_that_look_like_digits_have_no_skeleton():
    for letter in "OoQDIlijJSsZzBGbgq":
        assert letter in negatives.EXCLUDED_LETTERS
    assert not set(negatives.LETTERS) & negatives.EXCLUDED_LETTERS
    assert 25 <= len(negatives.LETTERS) <= 35


def test_digits_in_bytes_are_accepted_like_floats(digits):
    as_bytes = np.round(digits * 255).astype(np.uint8)
    from_floats = negatives.draw(12, np.random.default_rng(8), digits)
    from_bytes = negatives.draw(12, np.random.default_rng(8), as_bytes)
    np.testing.assert_allclose(from_floats, from_bytes, atol=0.02)


def test_digits_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError):
        negatives.draw(3, np.random.default_rng(0), np.zeros((5, 28, 27)))


def test_a_slanted_lone_stroke_is_slender_and_a_square_is_not():
    stroke = np.zeros((28, 28), np.float32)
    cv2.line(stroke, (8, 24), (20, 4), 1.0, 2, cv2.LINE_AA)
    square = np.zeros((28, 28), np.float32)
    square[4:24, 4:24] = 1.0
    assert negatives.slenderness(stroke) < negatives.MIN_SLENDERNESS
    assert negatives.slenderness(square) == pytest.approx(1.0)


def test_off_centre_measures_the_distance_of_the_centre_of_mass():
    image = np.zeros((28, 28), np.float32)
    image[10:19, 10:19] = 1.0                   # mass centred on pixel (14, 14)
    assert negatives.off_centre(image) == pytest.approx(0.0)
    assert negatives.off_centre(np.roll(image, 3, axis=1)) == pytest.approx(3.0)


def test_specks_left_by_the_cut_are_removed_and_the_piece_kept():
    piece = np.zeros((84, 84), np.float32)
    piece[10:70, 20:30] = 1.0                   # the piece
    piece[75:78, 60:63] = 1.0                   # the tip of a stroke that crossed the cut
    cleaned = negatives._without_specks(piece)
    assert cleaned[75:78, 60:63].max() == 0
    np.testing.assert_array_equal(cleaned[:72], piece[:72])


def test_digits_that_only_make_ones_are_refused_instead_of_looping(monkeypatch):
    only("partial", monkeypatch)
    ones = np.zeros((2, 28, 28), np.float32)
    ones[:, 4:24, 13:15] = 1.0
    with pytest.raises(ValueError, match="no usable pieces"):
        negatives.draw(2, np.random.default_rng(0), ones)
