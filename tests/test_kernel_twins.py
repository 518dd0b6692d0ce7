"""The element-wise, batch-norm and Adam kernels agree with their plain-NumPy twins."""

import numpy as np
import pytest

from tinynet.kernels import elementwise as ew
from tinynet.kernels import norm
from tinynet.kernels.parallel import chunks, map_flat, run_chunks

DTYPES = [np.float32, np.float64]


def _r(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_kernels_match_numpy(dtype):
    x, g = _r(1001, dtype), _r(1001, dtype, 1)
    x[::7] = 0
    y1, y2 = np.empty_like(x), np.empty_like(x)
    np.testing.assert_array_equal(ew.relu_forward(x, y1), ew.relu_forward_numpy(x, y2))
    d1, d2 = np.empty_like(x), np.empty_like(x)
    np.testing.assert_array_equal(ew.relu_backward(g, y1, d1), ew.relu_backward_numpy(g, y1, d2))
    assert np.all(d1[x <= 0] == 0) and np.all(d1[x > 0] == g[x > 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_and_multiply_match_numpy(dtype):
    x = _r(999, dtype)
    u = np.random.default_rng(2).random(999, dtype=np.float32)
    keep, scale = np.float32(0.75), dtype(1 / 0.75)
    m1, m2, y1, y2 = (np.empty_like(x) for _ in range(4))
    ew.dropout_forward(x, u, keep, scale, m1, y1)
    ew.dropout_forward_numpy(x, u, keep, scale, m2, y2)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(m1 != 0, u < keep)
    a, b = np.empty_like(x), np.empty_like(x)
    np.testing.assert_array_equal(ew.multiply(x, m1, a), ew.multiply_numpy(x, m1, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decay", [1.0, 0.99])
def test_adam_kernel_matches_numpy(dtype, decay):
    w, g = _r(500, dtype), _r(500, dtype, 1)
    m, v = _r(500, dtype, 2) * 0.1, np.abs(_r(500, dtype, 3)) * 0.01
    args = [dtype(s) for s in (0.9, 0.1, 0.999, 0.001, 1e-3, 1e-8, decay)]
    state1 = [a.copy() for a in (w, m, v)]
    state2 = [a.copy() for a in (w, m, v)]
    ew.adam_update(state1[0], g, state1[1], state1[2], *args)
    ew.adam_update_numpy(state2[0], g, state2[1], state2[2], *args)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for a, b in zip(state1, state2):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3, 17), (9, 4, 1)])
def test_norm_kernels_match_numpy(dtype, shape):
    x, g = _r(shape, dtype) * 3 + 5, _r(shape, dtype, 1)
    C = shape[1]
    shift = np.linspace(4, 6, C).astype(dtype)
    s = [np.zeros(C) for _ in range(4)]
    norm.channel_sums(x, shift, s[0], s[1])
    norm.channel_sums_numpy(x, shift, s[2], s[3])
    np.testing.assert_allclose(s[0], s[2], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(s[1], s[3], rtol=1e-10, atol=1e-9)
    mu = x.astype(np.float64).mean(axis=(0, 2))
    M = shape[0] * shape[2]
    np.testing.assert_allclose(shift + s[0] / M, mu, rtol=1e-6)
    t = [np.zeros(C) for _ in range(4)]
    norm.channel_sums_grad(g, x, mu.astype(dtype), t[0], t[1])
    norm.channel_sums_grad_numpy(g, x, mu.astype(dtype), t[2], t[3])
    np.testing.assert_allclose(t[0], t[2], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(t[1], t[3], rtol=1e-10, atol=1e-9)
    a, b, c, m = (_r(C, dtype, k) for k in (4, 5, 6, 7))
    y1, y2 = np.empty_like(x), np.empty_like(x)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(norm.affine(x, m, a, b, y1), norm.affine_numpy(x, m, a, b, y2),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(norm.affine2(g, x, m, a, b, c, y1),
                               norm.affine2_numpy(g, x, m, a, b, c, y2), rtol=tol, atol=tol)


def test_run_chunks_covers_every_slice_in_order():
    out = run_chunks(lambda s, e: (s, e), 10, 3)
    assert out == chunks(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    x = np.arange(300_000, dtype=np.float32) - 150_000
    y = np.empty_like(x)
    map_flat(ew.relu_forward, x.size, x, y)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
