"""Batch-normalisation kernels: per-channel sums, and per-channel affine maps.

Every BatchNorm input is viewed as x (N, C, L): C features (channels), L = H*W positions
per image for conv inputs, L = 1 for dense inputs (N, D). Statistics run over the
M = N*L values of each channel. See ``tinynet/layers/norm.py`` for the math; the layer's
passes over memory are

    forward:  channel_sums (mean and variance, one pass)  ->  affine (y = a*(x - mu) + b)
    backward: channel_sums_grad (sum G, sum G*(x - mu))    ->  affine2 (dx = A*G + B*(x - mu) + C)

so two passes each way. The sums are accumulated in float64, so the one-pass variance
(around a per-channel shift, see below) is accurate for float32 data.

Each jitted kernel has a plain-NumPy twin (``*_numpy``) with the same signature; the tests
check that both agree. Sums *accumulate* into their outputs (the layer zeroes them), so the
layer can split a batch over threads and add the partial sums.
"""

import numpy as np
from numba import njit

_FAST = {"reassoc", "contract"}    # let LLVM vectorise the sums (reorders the additions)


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


def channel_sums_numpy(x, shift, s1, s2):
    """Readable twin of :func:`channel_sums`."""
    d = x.astype(np.float64) - shift.astype(np.float64)[None, :, None]
    s1 += d.sum(axis=(0, 2))
    s2 += (d * d).sum(axis=(0, 2))


@njit(cache=True, nogil=True, fastmath=_FAST)
def channel_sums_grad(g, x, mu, sg, sgx):
    """sg[c] += sum g,  sgx[c] += sum g * (x - mu[c]) over n and l."""
    N, C, L = x.shape
    for n in range(N):
        for c in range(C):
            m = np.float64(mu[c])
            grow = g[n, c]
            xrow = x[n, c]
            a = 0.0
            b = 0.0
            for i in range(L):
                gi = np.float64(grow[i])
                a += gi
                b += gi * (xrow[i] - m)
            sg[c] += a
            sgx[c] += b


def channel_sums_grad_numpy(g, x, mu, sg, sgx):
    """Readable twin of :func:`channel_sums_grad`."""
    g64 = g.astype(np.float64)
    sg += g64.sum(axis=(0, 2))
    sgx += (g64 * (x - mu.astype(np.float64)[None, :, None])).sum(axis=(0, 2))


@njit(cache=True, nogil=True)
def affine(x, m, a, b, y):
    """y[n, c, l] = a[c] * (x[n, c, l] - m[c]) + b[c]; returns ``y``."""
    N, C, L = x.shape
    for n in range(N):
        for c in range(C):
            mc = m[c]
            ac = a[c]
            bc = b[c]
            xrow = x[n, c]
            yrow = y[n, c]
            for i in range(L):
                yrow[i] = ac * (xrow[i] - mc) + bc
    return y


def affine_numpy(x, m, a, b, y):
    """Readable twin of :func:`affine`."""
    y[...] = a[None, :, None] * (x - m[None, :, None]) + b[None, :, None]
    return y


@njit(cache=True, nogil=True)
def affine2(g, x, m, A, B, C_, dx):
    """dx[n, c, l] = A[c] * g[n, c, l] + B[c] * (x[n, c, l] - m[c]) + C_[c]; returns ``dx``."""
    N, C, L = x.shape
    for n in range(N):
        for c in range(C):
            mc = m[c]
            ac = A[c]
            bc = B[c]
            cc = C_[c]
            grow = g[n, c]
            xrow = x[n, c]
            drow = dx[n, c]
            for i in range(L):
                drow[i] = ac * grow[i] + bc * (xrow[i] - mc) + cc
    return dx


def affine2_numpy(g, x, m, A, B, C_, dx):
    """Readable twin of :func:`affine2`."""
    dx[...] = (A[None, :, None] * g + B[None, :, None] * (x - m[None, :, None])
               + C_[None, :, None])
    return dx
