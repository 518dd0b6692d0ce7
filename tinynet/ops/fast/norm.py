"""Batch normalisation, fast: per-channel sums and per-channel affine maps in Numba.

Every input is viewed as x (N, C, L): C features (channels), L = H*W positions per image for
(N, C, H, W) inputs, L = 1 for (N, D) inputs. Statistics run over the M = N*L values of each
channel. The math is in ``tinynet/ops/reference.py``; here each direction is two passes over
memory:

    forward:  channel_sums (mean, variance: one pass)  ->  affine (y = a*(x - mu) + b)
    backward: channel_sums_grad (sum G, sum G*(x - mu)) ->  input_grad (dx = A*G + B*(x - mu) + c)

(with a fused ReLU, affine also takes max(y, 0), and both backward kernels read G as dout
where a*(x - mu) + b, recomputed from x, is positive: neither direction makes a pass of its
own for the ReLU, and backward does not read the forward's output back from memory for its
mask)

where input_grad's per-channel A = gamma * inv_std, B = -A * inv_std * sum(G * xhat) / M and
c = -A * sum(G) / M are the reference's formula for dL/dx, expanded, so xhat is never stored.
The sums accumulate in float64 (around a per-channel shift near the mean, so the one-pass
variance stays accurate for float32 data) into their outputs, so a batch split over threads
adds its partial sums.
"""

import math

import numpy as np
from numba import njit

from .pool import larger
from .scheduler import chunk_for, run_chunks

CHUNK_BYTES = 1 << 20   # bytes of input per slice handed to a worker thread

_FAST = {"reassoc", "contract"}    # let LLVM vectorise the sums (reorders the additions)


@njit(cache=True, nogil=True)
def _normalised(x, m, a, b):
    """a*(x - m) + b: the forward's output before its ReLU. Forward and backward both call
    this, without fast-math flags, so the backward's recomputed ReLU mask is bit for bit the
    forward's (flags are per instruction, and stay off when this is inlined)."""
    return a * (x - m) + b


@njit(cache=True, nogil=True, fastmath=_FAST)
def channel_sums(x, shift, s1, s2):
    """s1[c] += sum (x - shift[c]),  s2[c] += sum (x - shift[c])^2 over n and l.

    Then mean = shift + s1/M and var = s2/M - (s1/M)^2; a shift near the mean (the layer
    passes the running mean) keeps the subtraction free of cancellation."""
    N, C, L = x.shape
    for n in range(N):
        for c in range(C):
            k = np.float64(shift[c])
            row = x[n, c]
            a = 0.0
            b = 0.0
            for i in range(L):
                d = row[i] - k
                a += d
                b += d * d
            s1[c] += a
            s2[c] += b


@njit(cache=True, nogil=True, fastmath=_FAST)
def channel_sums_grad(g, x, mu, sg, sgx, a, b, masked):
    """sg[c] += sum G,  sgx[c] += sum G * (x - mu[c]) over n and l, with G = g, or (when
    ``masked``, for a fused ReLU) g where a[c]*(x - mu[c]) + b[c] > 0 and 0 elsewhere."""
    N, C, L = x.shape
    for n in range(N):
        for c in range(C):
            m = np.float64(mu[c])
            mc, ac, bc = mu[c], a[c], b[c]
            grow = g[n, c]
            xrow = x[n, c]
            s = 0.0
            t = 0.0
            if masked:          # two loops, so that each vectorises without a test inside
                for i in range(L):
                    kept = _normalised(xrow[i], mc, ac, bc) > 0
                    gi = np.float64(grow[i]) if kept else 0.0
                    s += gi
                    t += gi * (xrow[i] - m)
            else:
                for i in range(L):
                    gi = np.float64(grow[i])
                    s += gi
                    t += gi * (xrow[i] - m)
            sg[c] += s
            sgx[c] += t


@njit(cache=True, nogil=True)
def affine(x, m, a, b, floor, y):
    """y[n, c, l] = max(a[c] * (x[n, c, l] - m[c]) + b[c], floor); returns ``y``. ``floor`` (in
    y's dtype) is 0 for a fused ReLU, -inf for none (NaN passes through, as in np.maximum)."""
    N, C, L = x.shape
    for n in range(N):
        for c in range(C):
            mc = m[c]
            ac = a[c]
            bc = b[c]
            xrow = x[n, c]
            yrow = y[n, c]
            for i in range(L):
                v = _normalised(xrow[i], mc, ac, bc)
                yrow[i] = floor if v < floor else v
    return y


@njit(cache=True, nogil=True)
def input_grad(g, x, m, A, B, c, dx, a, b, masked):
    """dx[n, k, l] = A[k] * G[n, k, l] + B[k] * (x[n, k, l] - m[k]) + c[k], G as in
    :func:`channel_sums_grad`; returns ``dx``."""
    N, C, L = x.shape
    for n in range(N):
        for k in range(C):
            mc = m[k]
            ac = A[k]
            bc = B[k]
            cc = c[k]
            fa, fb = a[k], b[k]
            grow = g[n, k]
            xrow = x[n, k]
            drow = dx[n, k]
            if masked:
                for i in range(L):
                    kept = _normalised(xrow[i], mc, fa, fb) > 0
                    gi = grow[i] if kept else grow[i] * 0
                    drow[i] = ac * gi + bc * (xrow[i] - mc) + cc
            else:
                for i in range(L):
                    drow[i] = ac * grow[i] + bc * (xrow[i] - mc) + cc
    return dx


@njit(cache=True, nogil=True)
def affine_relu_pool(x, m, a, b, out, arg):
    """out[n, c, oh, ow] = the largest max(a[c]*(x - m[c]) + b[c], 0) of each 2x2 window of
    x[n, c] (stride 2), arg its flat position in the plane (ties: the first in row-major
    order, as ``pool._maxpool2x2_forward``, with the same selects); returns ``out``."""
    N, C, H, W = x.shape
    OH = out.shape[2]
    OW = out.shape[3]
    zero = out.dtype.type(0)
    for n in range(N):
        for c in range(C):
            mc, ac, bc = m[c], a[c], b[c]
            plane = x[n, c]
            for oh in range(OH):
                r0 = plane[2 * oh]
                r1 = plane[2 * oh + 1]
                orow = out[n, c, oh]
                arow = arg[n, c, oh]
                top = 2 * oh * W
                for ow in range(OW):
                    w = 2 * ow
                    v = _normalised(r0[w], mc, ac, bc)
                    best, where = (v if v > zero else zero), top + w
                    best, where = larger(_normalised(r0[w + 1], mc, ac, bc), top + w + 1,
                                         best, where)
                    best, where = larger(_normalised(r1[w], mc, ac, bc), top + W + w,
                                         best, where)
                    best, where = larger(_normalised(r1[w + 1], mc, ac, bc), top + W + w + 1,
                                         best, where)
                    orow[ow] = best
                    arow[ow] = where
    return out


@njit(cache=True, nogil=True, fastmath=_FAST)
def pooled_sums_grad(d, arg, x, mu, sg, sgx, a, b):
    """:func:`channel_sums_grad` for G = the max-pool's backward of ``d`` gated by the ReLU:
    G is d at each window's maximum ``arg`` where a*(x - mu) + b > 0 there, 0 elsewhere, so
    only the pooled positions are visited."""
    N, C, OH, OW = d.shape
    for n in range(N):
        for c in range(C):
            m = np.float64(mu[c])
            mc, ac, bc = mu[c], a[c], b[c]
            plane = x[n, c].reshape(-1)
            s = 0.0
            t = 0.0
            for oh in range(OH):
                drow = d[n, c, oh]
                arow = arg[n, c, oh]
                for ow in range(OW):
                    xv = plane[arow[ow]]
                    if _normalised(xv, mc, ac, bc) > 0:
                        gi = np.float64(drow[ow])
                        s += gi
                        t += gi * (xv - m)
            sg[c] += s
            sgx[c] += t


@njit(cache=True, nogil=True)
def pooled_input_grad(d, arg, x, m, A, B, c, dx, a, b):
    """:func:`input_grad` for the G of :func:`pooled_sums_grad`: dx = B*(x - m) + c where G is
    0 (every position but the kept maxima), A*G + B*(x - m) + c at those; returns ``dx``."""
    N, C, OH, OW = d.shape
    for n in range(N):
        for k in range(C):
            mc, ac, bc, cc = m[k], A[k], B[k], c[k]
            fa, fb = a[k], b[k]
            xrow = x[n, k].reshape(-1)
            drow_all = dx[n, k].reshape(-1)
            for i in range(xrow.size):
                drow_all[i] = bc * (xrow[i] - mc) + cc
            for oh in range(OH):
                grow = d[n, k, oh]
                arow = arg[n, k, oh]
                for ow in range(OW):
                    p = arow[ow]
                    xv = xrow[p]
                    if _normalised(xv, mc, fa, fb) > 0:
                        drow_all[p] = ac * grow[ow] + bc * (xv - mc) + cc
    return dx


def _view(x):
    """x as the contiguous (N, C, L) array the kernels use, and the chunk size for it."""
    x = np.ascontiguousarray(x)
    N, C = x.shape[:2]
    x3 = x.reshape(N, C, math.prod(x.shape[2:]))
    return x3, chunk_for(N, C * x3.shape[2] * x.dtype.itemsize, CHUNK_BYTES)


def batchnorm_moments(x):
    x3, chunk = _view(x)
    N, C, L = x3.shape
    shift = x3[0, :, 0].astype(np.float64)     # any value near each channel's mean will do

    def sums(s, e):
        s1, s2 = np.zeros(C), np.zeros(C)
        channel_sums(x3[s:e], shift, s1, s2)
        return s1, s2

    parts = run_chunks(sums, N, chunk)
    d = sum(p[0] for p in parts) / (N * L)                  # mean - shift, float64
    var = np.maximum(sum(p[1] for p in parts) / (N * L) - d * d, 0)
    return (shift + d).astype(x.dtype), var.astype(x.dtype)


def _scale(gamma, var, eps):
    """(a, inv_std): a = gamma / sqrt(var + eps) in gamma's dtype, computed one way for
    forward and backward (the backward's ReLU mask must be the forward's), and 1 / sqrt(var +
    eps) in float64 for the backward's sums."""
    inv_std = (1 / np.sqrt(var + eps)).astype(gamma.dtype)
    return (gamma * inv_std).astype(gamma.dtype), inv_std.astype(np.float64)


def _gradients(gamma, beta, var, eps, batch_stats, dx, N, M, chunk, sums, grad):
    """The backward both batch-norm ops share, given their two kernels as calls on a slice
    [s, e) of the batch: ``sums(s, e, sg, sgx, a, b)`` adds the slice's sum G and
    sum G*(x - mu) into sg, sgx (float64), and ``grad(s, e, A, B, c, a, b)`` writes the
    slice's dx = A*G + B*(x - mu) + c (a, b: the forward's scale and shift, for the ReLU's
    mask). M values per channel; ``dx`` None when it is not needed. Returns (dx, dgamma,
    dbeta)."""
    dt, C = gamma.dtype, len(gamma)
    a, inv_std = _scale(gamma, var, eps)
    b = beta.astype(dt, copy=False)

    def slice_sums(s, e):
        sg, sgx = np.zeros(C), np.zeros(C)
        sums(s, e, sg, sgx, a, b)
        return sg, sgx

    parts = run_chunks(slice_sums, N, chunk)
    dbeta = sum(p[0] for p in parts)                         # sum(G)
    dgamma = sum(p[1] for p in parts) * inv_std              # sum(G * xhat)
    if dx is not None:
        scale = gamma * inv_std
        A = scale.astype(dt)
        if batch_stats:
            B = (-scale * inv_std * dgamma / M).astype(dt)
            c = (-scale * dbeta / M).astype(dt)
        else:
            B = c = np.zeros(C, dtype=dt)
        run_chunks(lambda s, e: grad(s, e, A, B, c, a, b), N, chunk)
    return dx, dgamma.astype(dt), dbeta.astype(dt)


def batchnorm_forward(x, gamma, beta, mean, var, eps, relu=False):
    x3, chunk = _view(x.astype(gamma.dtype, copy=False))
    a, _ = _scale(gamma, var, eps)
    floor = gamma.dtype.type(0 if relu else -np.inf)
    y = np.empty_like(x3)
    run_chunks(lambda s, e: affine(x3[s:e], mean, a, beta, floor, y[s:e]), x3.shape[0], chunk)
    return y.reshape(x.shape)


def batchnorm_backward(dout, x, gamma, beta, mean, var, eps, batch_stats, need_dx=True,
                       relu=False):
    dt = gamma.dtype
    x3, chunk = _view(x.astype(dt, copy=False))
    G3 = np.ascontiguousarray(dout, dtype=dt).reshape(x3.shape)
    N, C, L = x3.shape
    dx = np.empty_like(G3) if need_dx else None
    dx, dgamma, dbeta = _gradients(
        gamma, beta, var, eps, batch_stats, dx, N, N * L, chunk,
        lambda s, e, sg, sgx, a, b: channel_sums_grad(G3[s:e], x3[s:e], mean, sg, sgx, a, b,
                                                      relu),
        lambda s, e, A, B, c, a, b: input_grad(G3[s:e], x3[s:e], mean, A, B, c, dx[s:e], a, b,
                                               relu))
    return (None if dx is None else dx.reshape(x.shape)), dgamma, dbeta


def batchnorm_relu_pool_forward(x, gamma, beta, mean, var, eps):
    x = np.ascontiguousarray(x, dtype=gamma.dtype)
    N, C, H, W = x.shape
    a, _ = _scale(gamma, var, eps)
    out = np.empty((N, C, H // 2, W // 2), dtype=x.dtype)
    arg = np.empty(out.shape, dtype=np.int32)
    run_chunks(lambda s, e: affine_relu_pool(x[s:e], mean, a, beta, out[s:e], arg[s:e]), N,
               chunk_for(N, C * H * W * x.dtype.itemsize, CHUNK_BYTES))
    return out, arg


def batchnorm_relu_pool_backward(dout, arg, x, gamma, beta, mean, var, eps, batch_stats,
                                 need_dx=True):
    dt = gamma.dtype
    x = np.ascontiguousarray(x, dtype=dt)
    d = np.ascontiguousarray(dout, dtype=dt)
    N, C, H, W = x.shape
    dx = np.empty_like(x) if need_dx else None
    return _gradients(
        gamma, beta, var, eps, batch_stats, dx, N, N * H * W,
        chunk_for(N, C * H * W * x.dtype.itemsize, CHUNK_BYTES),
        lambda s, e, sg, sgx, a, b: pooled_sums_grad(d[s:e], arg[s:e], x[s:e], mean, sg, sgx,
                                                     a, b),
        lambda s, e, A, B, c, a, b: pooled_input_grad(d[s:e], arg[s:e], x[s:e], mean, A, B, c,
                                                      dx[s:e], a, b))
