"""tinynet.ops: the two backends agree on every op, and the backend switch works.

One agreement test per op: the op is run by the reference backend and by the fast one on
the same float32 inputs (several shapes, odd sizes included, and sizes large enough that the
fast backend splits the work over threads), and forward outputs and gradients must match.
The gradient checks that tie each op to the math are in the layer tests, under both backends.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from tinynet import ops
from tinynet.ops import reference as ref

fast = pytest.importorskip("tinynet.ops.fast", reason="the fast backend needs Numba")
scheduler = fast.scheduler

F32 = np.float32


def _r(shape, seed=0, dtype=F32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def close(a, b, tol=1e-5):
    """Agreement up to float32 rounding, relative to the size of the values."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    scale = max(np.abs(a).max(initial=0), 1e-30)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


def test_every_op_exists_in_both_backends_with_one_signature():
    import inspect

    for name in ops.OPS:
        r, f = getattr(ref, name), getattr(fast, name)
        assert inspect.signature(r) == inspect.signature(f), name


# -- dense ----------------------------------------------------------------------------------

# the last three split over threads: the forward by input features, then (a batch over
# SPLIT_INPUTS_MAX_BATCH) by images
@pytest.mark.parametrize("n, d_in, d_out", [(1, 1, 1), (7, 5, 3), (33, 17, 9),
                                            (301, 131, 119), (41, 801, 151), (601, 131, 119)])
@pytest.mark.parametrize("need_dx", [True, False])
def test_dense_agrees(n, d_in, d_out, need_dx):
    x, W, b, g = _r((n, d_in)), _r((d_in, d_out), 1), _r(d_out, 2), _r((n, d_out), 3)
    close(ref.dense_forward(x, W, b), fast.dense_forward(x, W, b))
    for a, c in zip(ref.dense_backward(g, x, W, need_dx), fast.dense_backward(g, x, W, need_dx)):
        assert (a is None) == (c is None) == (not need_dx and a is None)
        if a is not None:
            close(a, c)
            assert c.dtype == F32


# -- conv2d ---------------------------------------------------------------------------------

# (N, C, H, W, F, kh, kw, stride, pad): odd sizes, non-square kernels, stride > kernel, big
# padding, and batches the fast backend cuts into several slices
CONV_CASES = [
    (2, 3, 7, 9, 4, 3, 3, 1, 0),
    (3, 2, 8, 8, 5, 3, 3, 1, 1),
    (2, 3, 9, 7, 2, 3, 2, 2, 1),
    (1, 1, 11, 10, 3, 5, 5, 3, 2),
    (2, 2, 6, 5, 3, 1, 1, 2, 0),
    (1, 4, 5, 5, 2, 2, 3, 1, 3),
    (40, 16, 14, 13, 8, 3, 3, 1, 1),
    (70, 1, 28, 28, 4, 3, 3, 1, 0),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
def test_conv2d_agrees(case):
    N, C, H, W, F, kh, kw, s, p = case
    x, Wt, b = _r((N, C, H, W)), _r((F, C, kh, kw), 1), _r(F, 2)
    y = ref.conv2d_forward(x, Wt, b, s, p)
    assert y.shape == (N, F, ref.conv_output_size(H, kh, s, p), ref.conv_output_size(W, kw, s, p))
    close(y, fast.conv2d_forward(x, Wt, b, s, p))
    g = _r(y.shape, 3)
    for need_dx in (True, False):
        r = ref.conv2d_backward(g, x, Wt, s, p, need_dx)
        f = fast.conv2d_backward(g, x, Wt, s, p, need_dx)
        for a, c in zip(r, f):
            if a is None:
                assert c is None and not need_dx
            else:
                close(a, c, 2e-5)


# (N, C, H, W, F, k, pad): a first layer (no dL/dx) with few taps takes dL/dW and dL/db by
# taps; with 4 channels of 3x3 (36 taps) it is over BY_TAPS_MAX and takes the products
@pytest.mark.parametrize("case", [(3, 1, 9, 8, 4, 3, 0), (70, 1, 28, 28, 6, 3, 1),
                                  (5, 3, 7, 9, 4, 3, 2), (9, 1, 12, 12, 5, 5, 0),
                                  (4, 4, 8, 8, 3, 3, 1)], ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("relu", [True, False])
def test_first_layer_weight_gradient_agrees(case, relu, monkeypatch):
    from tinynet.ops.fast import conv

    N, C, H, W, F, k, p = case
    x, Wt, b = _r((N, C, H, W)), _r((F, C, k, k), 1), _r(F, 2)
    y = ref.conv2d_forward(x, Wt, b, 1, p, relu)
    g = _r(y.shape, 3)
    taps = []
    real = conv.weight_grad_by_taps
    monkeypatch.setattr(conv, "weight_grad_by_taps", lambda *a: taps.append(1) or real(*a))
    got = fast.conv2d_backward(g, x, Wt, 1, p, False, y if relu else None)
    want = ref.conv2d_backward(g, x, Wt, 1, p, False, y if relu else None)
    assert got[0] is None and want[0] is None
    close(got[1], want[1], 2e-5)
    close(got[2], want[2], 2e-5)
    assert got[1].dtype == got[2].dtype == F32
    assert bool(taps) == (C * k * k <= conv.BY_TAPS_MAX)


def test_conv2d_reference_matches_the_definition():
    x, Wt, b = _r((2, 2, 7, 6), dtype=np.float64), _r((3, 2, 3, 3), 1, np.float64), _r(3, 2)
    y = ref.conv2d_forward(x, Wt, b, 2, 1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for n, f, oh, ow in [(0, 0, 0, 0), (1, 2, 3, 2), (1, 1, 2, 0)]:
        want = b[f] + np.sum(Wt[f] * xp[n, :, 2 * oh:2 * oh + 3, 2 * ow:2 * ow + 3])
        assert y[n, f, oh, ow] == pytest.approx(want, rel=1e-12)


def test_col2im_is_the_adjoint_of_im2col():
    x = _r((2, 3, 7, 8), dtype=np.float64)
    cols = ref.im2col(x, 3, 2, 2, 1)
    d = _r(cols.shape, 1, np.float64)
    # <im2col(x), d> == <x, col2im(d)>: the backward of a copy adds gradients back
    assert np.sum(cols * d) == pytest.approx(np.sum(x * ref.col2im(d, x.shape, 3, 2, 2, 1)))


def test_side_by_side_kernels_hold_each_images_cols_and_masked_gradient():
    """The layout dL/dW's single product reads: row k of ``im2col_side_by_side`` holds tap k
    of every image (the reference's im2col of image n at n*P), and ``grad_side_by_side``
    puts dL/dy the same way, zeroed where a fused ReLU's output was not positive, with db."""
    from tinynet.ops.fast import conv
    from tinynet.ops.fast.scheduler import row_scratch

    x = _r((3, 2, 7, 8))
    want = ref.im2col(x, 3, 2, 1, 1)                               # (N, K, P)
    N, K, P = want.shape
    rows = row_scratch("test_rows", K, N * P, F32)
    assert rows.shape[1] > N * P                                   # rows longer than needed
    conv.im2col_side_by_side(x, 3, 2, 1, 1, rows)
    for n in range(N):
        np.testing.assert_array_equal(rows[:, n * P:(n + 1) * P], want[n])
    G, out = _r((N, 4, P), 1), _r((N, 4, P), 2)
    nowhere = np.zeros((1, 1, 1), np.int32)
    for masked in (False, True):
        G2, db = row_scratch("test_g", 4, N * P, F32), np.zeros(4)
        conv.grad_side_by_side(G, out, masked, nowhere, False, P, G2, db)
        Gm = np.where(out > 0, G, 0) if masked else G
        for n in range(N):
            np.testing.assert_array_equal(G2[:, n * P:(n + 1) * P], Gm[n])
        np.testing.assert_allclose(db, Gm.astype(np.float64).sum(axis=(0, 2)), rtol=1e-12)
    # after a fused 2x2 max-pool: the pooled gradient, routed to where the maxima were
    OH, OW = 7, 8
    pooled, arg = ref.maxpool_forward(_r((N, 4, OH, OW), 4), 2, 2, 2)
    Gp = _r(pooled.shape, 5)
    for masked in (False, True):
        G2, db = row_scratch("test_g", 4, N * OH * OW, F32), np.zeros(4)
        G2[:] = np.nan                                             # every entry is written
        conv.grad_side_by_side(Gp.reshape(N, 4, -1), pooled.reshape(N, 4, -1), masked,
                               arg.reshape(N, 4, -1), True, OH * OW, G2, db)
        Gm = np.where(pooled > 0, Gp, 0) if masked else Gp
        want = ref.maxpool_backward(Gm, arg, (N, 4, OH, OW)).reshape(N, 4, OH * OW)
        for n in range(N):
            np.testing.assert_array_equal(G2[:, n * OH * OW:(n + 1) * OH * OW], want[n])
        np.testing.assert_allclose(db, Gm.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-12)


def test_fast_conv2d_backward_with_a_fused_relu_agrees():
    x, Wt, b = _r((5, 3, 9, 8)), _r((4, 3, 3, 3), 1), _r(4, 2)
    y = ref.conv2d_forward(x, Wt, b, 2, 1, True)                   # stride 2: im2col
    g = _r(y.shape, 3)
    for a, c in zip(ref.conv2d_backward(g, x, Wt, 2, 1, True, y),
                    fast.conv2d_backward(g, x, Wt, 2, 1, True, y)):
        close(a, c, 2e-5)


def test_fast_conv2d_gives_the_same_result_in_any_number_of_slices(monkeypatch):
    from tinynet.ops.fast import conv

    x, Wt, b = _r((7, 2, 6, 6)), _r((4, 2, 3, 3), 1), _r(4, 2)
    whole = fast.conv2d_forward(x, Wt, b, 1, 0)
    monkeypatch.setattr(conv, "MAX_CHUNK_IMAGES", 3)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    np.testing.assert_array_equal(fast.conv2d_forward(x, Wt, b, 1, 0), whole)


# -- max pooling ----------------------------------------------------------------------------

POOL_CASES = [((2, 3, 8, 8), 2, 2, 2), ((2, 3, 7, 9), 2, 2, 2), ((1, 2, 9, 7), 3, 3, 2),
              ((2, 2, 6, 6), 3, 2, 1), ((1, 1, 5, 5), 2, 2, 3), ((64, 32, 24, 24), 2, 2, 2)]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_maxpool_agrees(case):
    shape, ph, pw, s = case
    x = _r(shape)
    (y, arg), (yf, argf) = ref.maxpool_forward(x, ph, pw, s), fast.maxpool_forward(x, ph, pw, s)
    np.testing.assert_array_equal(y, yf)
    np.testing.assert_array_equal(arg, argf)
    assert y[0, 0, 0, 0] == x[0, 0, :ph, :pw].max()
    g = _r(y.shape, 1)
    dx = ref.maxpool_backward(g, arg, x.shape)
    close(dx, fast.maxpool_backward(g, argf, x.shape), 1e-6)
    assert dx.sum() == pytest.approx(g.sum(), rel=1e-4, abs=1e-3)   # every gradient lands once
    # a prediction skips finding where the maxima were; the maxima are the same
    for backend in (ref, fast):
        y_only, none = backend.maxpool_forward(x, ph, pw, s, need_arg=False)
        np.testing.assert_array_equal(y_only, y)
        assert none is None


def test_maxpool_ties_pick_the_first_position():
    x = np.zeros((1, 1, 4, 4), dtype=F32)
    for backend in (ref, fast):
        _, arg = backend.maxpool_forward(x, 2, 2, 2)
        np.testing.assert_array_equal(arg.ravel(), [0, 2, 8, 10])


# -- batch normalisation --------------------------------------------------------------------

BN_SHAPES = [(6, 4), (9, 4, 1, 1), (3, 3, 4, 5), (5, 3, 17, 1), (64, 32, 12, 12)]


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batchnorm_agrees(shape):
    C = shape[1]
    x, g = _r(shape) * 3 + 5, _r(shape, 1)
    gamma, beta = _r(C, 2) + 1, _r(C, 3)
    mean, var = ref.batchnorm_moments(x)
    for a, c in zip((mean, var), fast.batchnorm_moments(x)):
        close(a, c)
        assert c.dtype == F32
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    close(mean, x.astype(np.float64).mean(axis=axes))
    for batch_stats in (True, False):
        m, v = (mean, var) if batch_stats else (_r(C, 4), np.abs(_r(C, 5)) + 0.5)
        close(ref.batchnorm_forward(x, gamma, beta, m, v, 1e-5),
              fast.batchnorm_forward(x, gamma, beta, m, v, 1e-5))
        for need_dx in (True, False):
            r = ref.batchnorm_backward(g, x, gamma, beta, m, v, 1e-5, batch_stats, need_dx)
            f = fast.batchnorm_backward(g, x, gamma, beta, m, v, 1e-5, batch_stats, need_dx)
            assert (r[0] is None) == (f[0] is None) == (not need_dx)
            for a, c in zip(r, f):
                if a is not None:
                    close(a, c, 1e-4)
                    assert c.dtype == F32


@pytest.mark.parametrize("shape", [(6, 4), (3, 3, 4, 5), (16, 8, 6, 6)], ids=str)
def test_batchnorm_with_a_fused_relu_is_batchnorm_then_relu(shape):
    C = shape[1]
    x, g = _r(shape) * 3 + 5, _r(shape, 1)
    gamma, beta = _r(C, 2) + 1, _r(C, 3)
    mean, var = ref.batchnorm_moments(x)
    plain = ref.batchnorm_forward(x, gamma, beta, mean, var, 1e-5)
    y = np.maximum(plain, 0)
    assert 0.2 < (y > 0).mean() < 0.8               # the ReLU cuts a real share
    expected = ref.batchnorm_backward(ref.relu_backward(g, y), x, gamma, beta, mean, var, 1e-5,
                                      True)
    for backend in (ref, fast):
        close(backend.batchnorm_forward(x, gamma, beta, mean, var, 1e-5, relu=True), y)
        got = backend.batchnorm_backward(g, x, gamma, beta, mean, var, 1e-5, True, relu=True)
        for a, c in zip(expected, got):
            close(a, c, 1e-4)


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 7, 9), (64, 32, 24, 24)], ids=str)
def test_batchnorm_relu_pool_agrees(shape):
    C = shape[1]
    x, gamma, beta = _r(shape) * 3 + 1, _r(C, 2) + 1, _r(C, 3)
    mean, var = ref.batchnorm_moments(x)
    y, arg = ref.batchnorm_relu_pool_forward(x, gamma, beta, mean, var, 1e-5)
    assert y.shape == (shape[0], C, shape[2] // 2, shape[3] // 2)
    yf, argf = fast.batchnorm_relu_pool_forward(x, gamma, beta, mean, var, 1e-5)
    close(y, yf)
    np.testing.assert_array_equal(arg, argf)
    assert 0.2 < (y > 0).mean() < 0.95                     # the ReLU cuts some windows
    d = _r(y.shape, 4)
    for batch_stats in (True, False):
        for need_dx in (True, False):
            r = ref.batchnorm_relu_pool_backward(d, arg, x, gamma, beta, mean, var, 1e-5,
                                                 batch_stats, need_dx)
            f = fast.batchnorm_relu_pool_backward(d, argf, x, gamma, beta, mean, var, 1e-5,
                                                  batch_stats, need_dx)
            assert (f[0] is None) == (not need_dx)
            for a, c in zip(r, f):
                if a is not None:
                    close(a, c, 1e-4)
                    assert c.dtype == F32


def test_fast_batchnorm_backward_gates_exactly_where_its_forward_was_positive():
    # The fast backward recomputes the fused ReLU's mask from x; with G = 1 everywhere,
    # dL/dbeta counts the values it kept, which must be the forward's positive outputs, also
    # for values a rounding away from the ReLU's threshold.
    C = 3
    gamma, beta = np.array([0.7, 1.3, 2.1], F32), np.array([0.3, -0.2, 0.05], F32)
    mean, var = np.array([0.1, -0.4, 2.0], F32), np.array([0.5, 2.0, 0.8], F32)
    threshold = mean - beta * np.sqrt(var + 1e-5) / gamma        # where y crosses 0
    x = threshold[None, :, None, None] + _r((40, C, 6, 6)) * 1e-6
    y = fast.batchnorm_forward(x, gamma, beta, mean, var, 1e-5, relu=True)
    assert 0.1 < (y > 0).mean() < 0.9
    _, _, dbeta = fast.batchnorm_backward(np.ones_like(x), x, gamma, beta, mean, var, 1e-5,
                                          False, need_dx=False, relu=True)
    np.testing.assert_array_equal(dbeta, (y > 0).sum(axis=(0, 2, 3)))


def test_batchnorm_moments_stay_accurate_far_from_zero():
    x = (_r((50, 3, 4, 4), dtype=np.float64) * 0.01 + 1000).astype(F32)
    for backend in (ref, fast):
        _, var = backend.batchnorm_moments(x)
        close(var, x.astype(np.float64).var(axis=(0, 2, 3)), 1e-3)


# -- element-wise ---------------------------------------------------------------------------

SIZES = [(1,), (1001,), (3, 2, 5, 7), (300_001,)]     # the last is split over threads


@pytest.mark.parametrize("shape", SIZES, ids=str)
def test_relu_agrees(shape):
    x, g = _r(shape), _r(shape, 1)
    x.reshape(-1)[::7] = 0
    y = ref.relu_forward(x)
    np.testing.assert_array_equal(y, fast.relu_forward(x))
    np.testing.assert_array_equal(ref.relu_backward(g, y), fast.relu_backward(g, y))
    dx = fast.relu_backward(g, y)
    assert np.all(dx[x <= 0] == 0) and np.all(dx[x > 0] == g[x > 0])


@pytest.mark.parametrize("shape", SIZES, ids=str)
@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_agrees(shape, p):
    x, g = _r(shape), _r(shape, 1)
    y, m = ref.dropout_forward(x, p, np.random.default_rng(7))
    yf, mf = fast.dropout_forward(x, p, np.random.default_rng(7))
    np.testing.assert_array_equal(y, yf)
    np.testing.assert_array_equal(m, mf)
    assert set(np.unique(m)) <= {0, F32(1 / (1 - p))}
    np.testing.assert_array_equal(ref.dropout_backward(g, m), fast.dropout_backward(g, mf))


def test_counter_uniform_slices_are_the_stream_and_look_uniform():
    whole = ref.counter_uniform(12345, 0, 100_000)
    # any slice is the same draws, computed on its own (what lets threads share the work)
    np.testing.assert_array_equal(ref.counter_uniform(12345, 40_000, 1000),
                                  whole[40_000:41_000])
    assert whole.dtype == F32 and whole.min() >= 0 and whole.max() < 1
    counts = np.bincount((whole * 10).astype(int), minlength=10)
    assert np.all(np.abs(counts - 10_000) < 500)                 # ~5 standard deviations
    assert abs(np.corrcoef(whole[:-1], whole[1:])[0, 1]) < 0.02   # neighbours unrelated
    assert not np.array_equal(ref.counter_uniform(12346, 0, 1000), whole[:1000])


def test_fast_dropout_mask_does_not_depend_on_the_thread_count():
    x = _r((300_001,))
    masks = []
    for n in (1, 2, 3):
        with scheduler.threads(n):
            masks.append(fast.dropout_forward(x, 0.5, np.random.default_rng(3))[1])
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], masks[2])


@pytest.mark.parametrize("n, k", [(1, 2), (7, 10), (128, 10), (33, 1000)])
def test_softmax_cross_entropy_agrees(n, k):
    z, t = _r((n, k)) * 5, np.random.default_rng(1).integers(0, k, n)
    (loss, p), (lf, pf) = (ref.softmax_cross_entropy_forward(z, t),
                           fast.softmax_cross_entropy_forward(z, t))
    assert loss == pytest.approx(lf, rel=1e-6)
    close(p, pf)
    close(ref.softmax_cross_entropy_backward(p, t), fast.softmax_cross_entropy_backward(pf, t))


# -- optimizer updates ----------------------------------------------------------------------

def _three_steps(update, w, shape_g, **kwargs):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in (1, 2, 3):
        update(w, _r(shape_g, t), m, v, t, **kwargs)
    return w, m, v


@pytest.mark.parametrize("shape", [(1,), (5, 3), (784, 128), (300_001,)], ids=str)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_update_agrees(shape, weight_decay):
    kwargs = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay)
    a = _three_steps(ref.adam_update, _r(shape, 9), shape, **kwargs)
    b = _three_steps(fast.adam_update, _r(shape, 9), shape, **kwargs)
    for u, v in zip(a, b):
        close(u, v, 2e-5)
        assert v.dtype == F32


def test_adam_update_agrees_on_a_strided_parameter():
    kwargs = dict(lr=1e-2, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1)
    a = _three_steps(ref.adam_update, _r((6, 8), 9)[:, ::2], (6, 4), **kwargs)
    b = _three_steps(fast.adam_update, _r((6, 8), 9)[:, ::2], (6, 4), **kwargs)
    for u, v in zip(a, b):
        close(u, v, 2e-5)


@pytest.mark.parametrize("momentum, nesterov, weight_decay", [(0.0, False, 0.0),
                                                             (0.9, False, 0.01),
                                                             (0.9, True, 0.0)])
def test_sgd_update_agrees(momentum, nesterov, weight_decay):
    ws = [_r((5, 7), 9), _r((5, 7), 9)]
    vs = [np.zeros((5, 7), F32), np.zeros((5, 7), F32)]
    for t in range(3):
        for backend, w, v in zip((ref, fast), ws, vs):
            backend.sgd_update(w, _r((5, 7), t), v, 0.1, momentum, weight_decay, nesterov)
    close(ws[0], ws[1])
    close(vs[0], vs[1])
    assert ws[1].dtype == F32


# -- augmentation warps ---------------------------------------------------------------------

def _images(n, seed=0):
    imgs = np.zeros((n, 28, 28), dtype=F32)
    imgs[:, 6:22, 10:18] = np.random.default_rng(seed).random((n, 16, 8), dtype=F32)
    return imgs


@pytest.mark.parametrize("elastic", [False, True])
def test_warp_bilinear_agrees(elastic):
    from tinynet.augment import elastic_flow, random_affine

    rng = np.random.default_rng(2)
    imgs = _images(6)
    theta = random_affine(rng, 6, max_shift=3, max_rotation=20, scale=(0.8, 1.2))
    flow = (elastic_flow(rng, 6, (28, 28), alpha=10, sigma=3) if elastic
            else np.zeros((0, 2, 1, 1), F32))
    a = ref.warp_bilinear(imgs, theta, flow, np.empty_like(imgs))
    b = fast.warp_bilinear(imgs, theta, flow, np.empty_like(imgs))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(a, imgs)


def test_pen_width_agrees():
    imgs = _images(8)
    amount = np.linspace(-1, 1, 8).astype(F32)
    a = ref.pen_width(imgs, amount, np.empty_like(imgs))
    np.testing.assert_allclose(a, fast.pen_width(imgs, amount, np.empty_like(imgs)), atol=1e-6)
    assert not np.allclose(a, imgs)


def test_break_strokes_agrees():
    imgs = _images(8)
    picks = np.array([[0.1, -1], [0.5, 0.9], [-1, -1], [0.0, 0.999]] * 2, F32)
    a = ref.break_strokes(imgs, picks, F32(1.5), np.empty_like(imgs))
    np.testing.assert_array_equal(a, fast.break_strokes(imgs, picks, F32(1.5),
                                                        np.empty_like(imgs)))
    np.testing.assert_array_equal(a[2], imgs[2])          # no gap asked for
    assert (a[1] != imgs[1]).sum() > (a[0] != imgs[0]).sum() > 0


@pytest.mark.parametrize("shape, sigma", [((4, 28, 28), 2.5), ((3, 9, 13), 1.0)])
def test_blur_planes_agrees(shape, sigma):
    from tinynet.augment import gaussian_taps

    planes = np.random.default_rng(3).uniform(-1, 1, shape).astype(F32)
    taps = gaussian_taps(sigma)
    a = ref.blur_planes(planes, taps, np.empty_like(planes))
    np.testing.assert_allclose(a, fast.blur_planes(planes, taps, np.empty_like(planes)),
                               atol=1e-6)
    const = np.full(shape, 0.5, F32)
    np.testing.assert_allclose(ref.blur_planes(const, taps, np.empty_like(const)), 0.5,
                               atol=1e-6)


# -- choosing the backend -------------------------------------------------------------------

def test_use_switches_the_backend_and_restores_it():
    before = ops.backend()
    with ops.use("reference") as module:
        assert ops.backend() == "reference" and module is ref
        assert ops.dense_forward is ref.dense_forward
        with ops.use("fast"):
            assert ops.backend() == "fast" and ops.relu_forward is fast.relu_forward
        assert ops.backend() == "reference"
    assert ops.backend() == before
    with pytest.raises(ValueError, match="unknown ops backend 'gpu'"):
        ops.use("gpu")
    with pytest.raises(AttributeError):
        ops.no_such_op  # noqa: B018


def _python(code, **env):
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=120)


@pytest.mark.parametrize("value, name", [("reference", "reference"), ("fast", "fast"),
                                         ("", "fast")])
def test_tinynet_ops_environment_variable_chooses_at_import(value, name):
    r = _python("import tinynet; print(tinynet.ops.backend())", TINYNET_OPS=value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name and r.stderr == ""


def test_without_numba_the_reference_backend_is_used_with_a_notice():
    code = ("import sys; sys.modules['numba'] = None\n"
            "import tinynet, numpy as np\n"
            "print(tinynet.ops.backend())\n"
            "m = tinynet.Sequential([tinynet.Flatten(), tinynet.Dense(4, 2)])\n"
            "print(m.forward(np.ones((3, 2, 2), np.float32)).shape)\n")
    r = _python(code, TINYNET_OPS="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["reference", "(3,", "2)"]
    assert len(r.stderr.strip().splitlines()) == 1 and "Numba" in r.stderr


def test_an_unknown_backend_name_is_an_error_at_import():
    r = _python("import tinynet", TINYNET_OPS="gpu")
    assert r.returncode != 0 and "TINYNET_OPS='gpu'" in r.stderr


# -- the fast backend's scheduler -----------------------------------------------------------

def test_run_chunks_covers_every_slice_in_order_and_halves_the_last_ones():
    with scheduler.threads(1):
        out = scheduler.run_chunks(lambda s, e: (s, e), 10, 3)
    assert out == scheduler.chunks(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    with scheduler.threads(2):       # two slices a worker: the last two cut in two
        out = scheduler.run_chunks(lambda s, e: (s, e), 10, 3)
    assert out == [(0, 3), (3, 6), (6, 8), (8, 9), (9, 10)]
    with scheduler.threads(3):       # fewer than two slices a worker: left as they are
        assert scheduler.run_chunks(lambda s, e: (s, e), 10, 3) == scheduler.chunks(10, 3)
    assert scheduler.tapered(16, 4, 2) == [(0, 4), (4, 8), (8, 10), (10, 12), (12, 14),
                                           (14, 16)]


def test_workers_default_to_the_available_cores_and_follow_tinynet_threads(monkeypatch):
    monkeypatch.delenv("TINYNET_THREADS", raising=False)
    assert scheduler.default_workers() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("TINYNET_THREADS", "3")
    assert scheduler.default_workers() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("TINYNET_THREADS", bad)
        with pytest.raises(ValueError, match="TINYNET_THREADS"):
            scheduler.default_workers()


def test_threads_sets_the_worker_count_for_a_block_and_restores_it():
    before = scheduler.workers()
    with ops.use("fast"), ops.threads(1):
        assert scheduler.workers() == 1
        with scheduler.threads(3):
            assert scheduler.workers() == 3
        assert scheduler.workers() == 1
    assert scheduler.workers() == before


def test_each_thread_has_its_own_worker_count():
    """Two networks train side by side with threads(1) each: one thread's count never
    changes another's, and a helper slices nested work as its caller would."""
    import threading

    inside, seen = threading.Event(), {}

    def other():
        with scheduler.threads(1):
            inside.set()
            seen["other"] = scheduler.workers()

    with scheduler.threads(3):
        t = threading.Thread(target=other)
        t.start()
        inside.wait(5)
        t.join()
        assert scheduler.workers() == 3
        # every slice sees its caller's count, whichever thread runs it
        counts = scheduler.run_chunks(lambda s, e: scheduler.workers(), 6, 1)
    assert seen["other"] == 1 and counts == [3] * 6


def test_the_worker_count_does_not_depend_on_the_blas(monkeypatch):
    """An MKL (or any non-OpenBLAS) NumPy gets the same workers: the count is never read
    back from the BLAS."""
    monkeypatch.setattr(scheduler, "_openblas", None)               # as if not OpenBLAS
    monkeypatch.setattr(scheduler, "_SINGLE_BLAS", __import__("contextlib").nullcontext())
    monkeypatch.setenv("TINYNET_THREADS", "2")
    with scheduler.threads():
        assert scheduler.workers() == 2
        seen = set()
        barrier = __import__("threading").Barrier(2, timeout=10)

        def part(s, e):
            barrier.wait()              # both slices must run at the same time
            seen.add(__import__("threading").get_ident())
        scheduler.run_chunks(part, 2, 1)
    assert len(seen) == 2


@pytest.fixture
def openblas():
    """OpenBLAS's (set, get) thread-count functions; the count is put back afterwards."""
    if scheduler._openblas is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    setter, getter = scheduler._openblas
    before = getter()
    yield setter, getter
    setter(before)


def test_single_blas_sets_one_thread_and_restores_the_count(openblas):
    setter, getter = openblas
    setter(2)
    with scheduler.single_blas():
        assert getter() == 1
        with scheduler.single_blas():
            assert getter() == 1
        assert getter() == 1
    assert getter() == 2


def test_scratch_buffers_are_kept_per_shape():
    a = scheduler.scratch("t", (4, 5), F32)
    b = scheduler.scratch("t", (2, 5), F32)
    assert a is not b
    assert scheduler.scratch("t", (4, 5), F32) is a      # not reallocated by the other shape
    assert scheduler.scratch("t", (4, 5), np.float64) is not a
    for i in range(scheduler.SCRATCH_PER_THREAD + 1):
        scheduler.scratch("fill", (i + 1,), F32)
    assert scheduler.scratch("t", (4, 5), F32) is not a  # the least recently used was dropped


def test_map_flat_splits_large_arrays_and_matches_one_pass():
    x = np.arange(300_000, dtype=F32) - 150_000
    y = np.empty_like(x)
    scheduler.map_flat(fast.elementwise.relu_forward_kernel, x.size, x, y)
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_the_numpy_start_hands_over_to_the_kernels_after_its_budget(monkeypatch):
    monkeypatch.setattr(ops, "_start_work", 0)
    assert not ops._start_in_numpy(ops.START_OP_WORK + 1)        # a big op: kernels at once
    runs = ops.START_BUDGET // ops.START_OP_WORK
    assert all(ops._start_in_numpy(ops.START_OP_WORK) for _ in range(runs))
    assert not ops._start_in_numpy(1)                             # budget spent: kernels


def test_the_fast_backend_imports_numba_only_when_it_needs_it():
    """Reading a few digits runs on NumPy without importing Numba (a third of a second);
    a training step, or a budget of work, brings in the kernels."""
    code = (
        "import sys, numpy as np, tinynet\n"
        "from tinynet import ops\n"
        "model = tinynet.load('weights/mnist.npz')\n"
        "p = model.predict(np.zeros((3, 28, 28), np.float32))\n"
        "print(ops.backend(), 'numba' in sys.modules, p.shape)\n"
        "dout = np.ones((2, 4), np.float32)\n"
        "ops.dense_backward(dout, np.ones((2, 3), np.float32), np.ones((3, 4), np.float32))\n"
        "print(ops.backend(), 'numba' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "TINYNET_OPS"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["fast False (3, 11)", "fast True"]


def test_thin_agrees():
    rng = np.random.default_rng(4)
    blobs = (rng.random((6, 40, 40)) < 0.5).astype(np.uint8)
    blobs[:, 8:30, 10:16] = 1                  # solid strokes among the noise
    blobs[3] = 0                               # an empty image
    a = ref.thin(blobs, np.empty_like(blobs))
    np.testing.assert_array_equal(a, fast.thin(blobs, np.empty_like(blobs)))
    assert 0 < a.sum() < blobs.sum() and a[3].sum() == 0


def test_blas_threads_sets_the_count_for_the_block_and_restores_it(openblas):
    setter, getter = openblas
    setter(1)
    with scheduler.blas_threads(2) as known:
        assert known and getter() == 2
    assert getter() == 1


def test_blas_threads_changes_nothing_for_another_blas(monkeypatch):
    monkeypatch.setattr(scheduler, "_openblas", None)               # as if not OpenBLAS
    with scheduler.blas_threads(2) as known:
        assert known is False
