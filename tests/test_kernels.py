"""Each Numba kernel agrees with its plain-NumPy twin; augmentation behaves."""

import numpy as np
import pytest

from tinynet.kernels.augment import (
    augment,
    blur_planes,
    blur_planes_numpy,
    elastic_flow,
    gaussian_taps,
    random_affine,
    warp_bilinear,
    warp_bilinear_numpy,
)
from tinynet.kernels.conv import col2im, col2im_numpy, conv_output_size, im2col, im2col_numpy
from tinynet.kernels.pool import (
    maxpool_backward,
    maxpool_backward_numpy,
    maxpool_forward,
    maxpool_forward_numpy,
    pool_output_size,
)

DTYPES = [np.float32, np.float64]
# (N, C, H, W, kh, kw, stride, pad): odd sizes, non-square kernels, stride > kernel, big pad
CONV_CASES = [
    (2, 3, 7, 9, 3, 3, 1, 0),
    (3, 2, 8, 8, 3, 3, 1, 1),
    (2, 3, 9, 7, 3, 2, 2, 1),
    (1, 1, 11, 10, 5, 5, 3, 2),
    (2, 2, 6, 5, 1, 1, 2, 0),
    (1, 4, 5, 5, 2, 3, 1, 3),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bias_row", [False, True])
def test_im2col_col2im_match_numpy(dtype, case, bias_row):
    N, C, H, W, kh, kw, s, p = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    OH, OW = conv_output_size(H, kh, s, p), conv_output_size(W, kw, s, p)
    K = C * kh * kw + bias_row
    cols = np.full((N, K, OH * OW), np.nan, dtype=dtype)
    ref = np.full_like(cols, np.nan)
    assert im2col(x, kh, kw, s, p, cols) is cols
    im2col_numpy(x, kh, kw, s, p, ref)
    np.testing.assert_array_equal(cols, ref)
    # spot check one entry against the definition
    n, c, i, j, oh, ow = N - 1, C - 1, kh - 1, 0, OH - 1, OW // 2
    ih, iw = oh * s + i - p, ow * s + j - p
    want = x[n, c, ih, iw] if 0 <= ih < H and 0 <= iw < W else 0
    assert cols[n, (c * kh + i) * kw + j, oh * OW + ow] == want
    if bias_row:
        assert np.all(cols[:, -1] == 1)

    d = rng.standard_normal(cols.shape).astype(dtype)
    dx = np.full_like(x, np.nan)
    dx_ref = np.full_like(x, np.nan)
    assert col2im(d, kh, kw, s, p, dx) is dx
    col2im_numpy(d, kh, kw, s, p, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
    assert dx.dtype == dtype
    # col2im is the adjoint of im2col: <im2col(x), d> == <x, col2im(d)>
    nK = C * kh * kw
    lhs = np.sum(cols[:, :nK].astype(np.float64) * d[:, :nK])
    rhs = np.sum(x.astype(np.float64) * dx)
    assert lhs == pytest.approx(rhs, rel=1e-4)


POOL_CASES = [((2, 3, 8, 8), 2, 2, 2), ((2, 3, 7, 9), 2, 2, 2), ((1, 2, 9, 7), 3, 3, 2),
              ((2, 2, 6, 6), 3, 2, 1), ((1, 1, 5, 5), 2, 2, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool_matches_numpy(dtype, case):
    shape, ph, pw, s = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    OH, OW = pool_output_size(shape[2], ph, s), pool_output_size(shape[3], pw, s)
    out = np.empty(shape[:2] + (OH, OW), dtype=dtype)
    arg = np.empty(out.shape, dtype=np.int32)
    out_ref, arg_ref = np.empty_like(out), np.empty_like(arg)
    maxpool_forward(x, ph, pw, s, out, arg)
    maxpool_forward_numpy(x, ph, pw, s, out_ref, arg_ref)
    np.testing.assert_array_equal(out, out_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    assert out[0, 0, 0, 0] == x[0, 0, :ph, :pw].max()
    assert x.reshape(shape[0], shape[1], -1)[0, 0, arg[0, 0, -1, -1]] == out[0, 0, -1, -1]

    d = rng.standard_normal(out.shape).astype(dtype)
    dx, dx_ref = np.full_like(x, np.nan), np.full_like(x, np.nan)
    maxpool_backward(d, arg, dx)
    maxpool_backward_numpy(d, arg, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-6)
    assert dx.sum() == pytest.approx(d.sum(), rel=1e-4, abs=1e-4)   # every gradient lands once


def test_maxpool_ties_pick_first():
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    out = np.empty((1, 1, 2, 2), dtype=np.float32)
    arg, arg_ref = np.empty(out.shape, np.int32), np.empty(out.shape, np.int32)
    maxpool_forward(x, 2, 2, 2, out, arg)
    maxpool_forward_numpy(x, 2, 2, 2, out.copy(), arg_ref)
    np.testing.assert_array_equal(arg.ravel(), [0, 2, 8, 10])
    np.testing.assert_array_equal(arg, arg_ref)


def _mnist_like(n, seed=0):
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, 28, 28), dtype=np.float32)
    imgs[:, 6:22, 10:18] = rng.random((n, 16, 8), dtype=np.float32)
    return imgs


NO_FLOW = np.zeros((0, 2, 1, 1), dtype=np.float32)


def test_warp_matches_numpy():
    rng = np.random.default_rng(2)
    imgs = _mnist_like(6)
    theta = random_affine(rng, 6, max_shift=3, max_rotation=20, scale=(0.8, 1.2))
    flow = elastic_flow(rng, 6, (28, 28), alpha=10, sigma=3)
    for f in (NO_FLOW, flow):
        a = warp_bilinear(imgs, theta, f, np.empty_like(imgs))
        b = warp_bilinear_numpy(imgs, theta, f, np.empty_like(imgs))
        np.testing.assert_allclose(a, b, atol=1e-6)
        assert not np.allclose(a, imgs)


def test_warp_identity_and_integer_shift():
    imgs = _mnist_like(4)
    identity = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (4, 1, 1))
    np.testing.assert_array_equal(warp_bilinear(imgs, identity, NO_FLOW, np.empty_like(imgs)),
                                  imgs)
    zero_flow = np.zeros((4, 2, 28, 28), np.float32)
    np.testing.assert_array_equal(
        warp_bilinear(imgs, identity, zero_flow, np.empty_like(imgs)), imgs)
    # theta[:, 0, 2] = -3 reads from 3 pixels to the left: content moves 3 pixels right
    shift = identity.copy()
    shift[:, 0, 2] = -3
    out = warp_bilinear(imgs, shift, NO_FLOW, np.empty_like(imgs))
    np.testing.assert_array_equal(out[:, :, 3:], imgs[:, :, :-3])
    assert np.all(out[:, :, :3] == 0)


def test_blur_matches_numpy():
    rng = np.random.default_rng(3)
    planes = rng.uniform(-1, 1, (4, 28, 28)).astype(np.float32)
    taps = gaussian_taps(2.5)
    a = blur_planes(planes, taps, np.empty_like(planes))
    b = blur_planes_numpy(planes, taps, np.empty_like(planes))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert taps.sum() == pytest.approx(1, abs=1e-6)
    const = np.full((1, 9, 9), 0.5, np.float32)
    np.testing.assert_allclose(blur_planes(const, taps, np.empty_like(const)), 0.5, atol=1e-6)


@pytest.mark.parametrize("elastic", [0.0, 12.0])
def test_augment_reproducible_range_shape(elastic):
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
