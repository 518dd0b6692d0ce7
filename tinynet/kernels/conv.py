"""im2col / col2im: turning a 2-D convolution into one matrix product per image.

Notation (NCHW, the layout of every conv tensor in tinynet)::

    x     (N, C, H, W)        input batch
    W     (F, C, kh, kw)      F filters
    out   (N, F, OH, OW)      OH = (H + 2*pad - kh) // stride + 1, same for OW

A convolution (strictly a cross-correlation, as in every deep-learning library) is

    out[n, f, oh, ow] = sum_{c, i, j} W[f, c, i, j] * xp[n, c, oh*stride + i, ow*stride + j]

where ``xp`` is ``x`` with ``pad`` zeros added on every side. Write k = (c*kh + i)*kw + j for
the K = C*kh*kw filter taps and p = oh*OW + ow for the P = OH*OW output positions. If we copy
every input value that tap k sees at position p into a matrix

    cols[n, k, p] = xp[n, c, oh*stride + i, ow*stride + j]          (im2col)

the convolution of image n becomes the matrix product

    out[n] (F, P) = W.reshape(F, K) @ cols[n] (K, P)

which BLAS computes near the machine's peak. The product lands directly in NCHW order
(rows = filters, columns = output pixels), so no transpose copy is needed.

col2im is the adjoint (transpose) of im2col, used in the backward pass: each entry of
dcols = dL/dcols is added back to the input pixel it was copied from,

    dx[n, c, oh*stride + i - pad, ow*stride + j - pad] += dcols[n, k, p]

(entries that came from the zero padding are dropped). A pixel seen by several taps (all
of them, when stride < kernel size) receives the sum of their gradients.

Every jitted kernel here has a plain-NumPy twin with the same signature (``*_numpy``),
written to be read; the tests check that both agree.

Threading: these kernels are serial on purpose. The BLAS products around them already
use both cores through OpenBLAS, whose worker threads keep spinning for a moment after
each product. Measured on the 2-core machine (conv2 of the MNIST CNN, batch 64): a
``parallel=True``/prange version of im2col + col2im was ~1.8x faster in isolation
(4.5-6 ms vs 8.5 ms), but inside the whole forward+backward step, interleaved with the
OpenBLAS products, it was no faster (53-61 ms vs 53-57 ms, best of 15), so the simpler
serial kernels are kept and Numba's thread pool is never started.
"""

import numpy as np
from numba import njit


def conv_output_size(size, k, stride, pad):
    """Number of output positions along one axis: (size + 2*pad - k) // stride + 1."""
    return (size + 2 * pad - k) // stride + 1


@njit(cache=True, nogil=True)
def _pad(x, pad):
    """Copy of ``x`` (N, C, H, W) with ``pad`` zeros on each side of H and W."""
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H):
                src = x[n, c, h]
                dst = xp[n, c, h + pad]
                for w in range(W):
                    dst[w + pad] = src[w]
    return xp


@njit(cache=True, nogil=True)
def im2col(x, kh, kw, stride, pad, cols):
    """Fill ``cols`` (N, C*kh*kw, OH*OW) from ``x`` (N, C, H, W); returns ``cols``.

    With padding, the input is first copied into a zero-padded buffer (small next to
    ``cols``), so the copy loops below never test bounds. The loops run over
    (n, c, i, j) -> one row k of cols, then over output rows oh and columns ow, so the
    writes are contiguous; with stride 1 the reads are contiguous too and LLVM
    vectorises the inner loop. (Index arithmetic on 1-D row views with loop counters
    starting at 0 matters here: it lets LLVM prove indices are non-negative and drop
    Numba's negative-index wraparound test, which otherwise blocks vectorisation.)
    If ``cols`` has one more row than C*kh*kw, that last row is filled with ones
    (it lets a bias ride along in the matrix product).
    """
    N, C, H, W = x.shape
    OH = (H + 2 * pad - kh) // stride + 1
    OW = (W + 2 * pad - kw) // stride + 1
    K = C * kh * kw
    xp = _pad(x, pad) if pad > 0 else x
    for n in range(N):
        for c in range(C):
            plane = xp[n, c]
            for i in range(kh):
                for j in range(kw):
                    row = cols[n, (c * kh + i) * kw + j]
                    for oh in range(OH):
                        src = plane[oh * stride + i, j:]
                        o = oh * OW
                        if stride == 1:
                            for ow in range(OW):
                                row[o + ow] = src[ow]
                        else:
                            for ow in range(OW):
                                row[o + ow] = src[ow * stride]
        if cols.shape[1] > K:
            for p in range(OH * OW):
                cols[n, K, p] = 1
    return cols


def im2col_numpy(x, kh, kw, stride, pad, cols):
    """Readable twin of :func:`im2col`: one strided slice of the padded input per tap."""
    N, C, H, W = x.shape
    OH = conv_output_size(H, kh, stride, pad)
    OW = conv_output_size(W, kw, stride, pad)
    K = C * kh * kw
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    view = cols[:, :K, :].reshape(N, C, kh, kw, OH, OW)
    for i in range(kh):
        for j in range(kw):
            # every output position (oh, ow) looks at xp[..., oh*stride + i, ow*stride + j]
            view[:, :, i, j] = xp[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride]
    if cols.shape[1] > K:
        cols[:, K, :] = 1
    return cols


@njit(cache=True, nogil=True)
def col2im(dcols, kh, kw, stride, pad, dx):
    """Accumulate ``dcols`` (N, >=C*kh*kw, OH*OW) into ``dx`` (N, C, H, W); returns ``dx``.

    ``dx`` is overwritten. Rows beyond C*kh*kw (a bias row) are ignored. Same loops as
    :func:`im2col` with += instead of =, into a zero-padded plane whose border (the
    gradient of the padding) is dropped at the end.
    """
    N, C, H, W = dx.shape
    OH = (H + 2 * pad - kh) // stride + 1
    OW = (W + 2 * pad - kw) // stride + 1
    HP = H + 2 * pad
    WP = W + 2 * pad
    plane = np.empty((HP, WP), dtype=dx.dtype)
    for n in range(N):
        for c in range(C):
            plane[:, :] = 0
            for i in range(kh):
                for j in range(kw):
                    row = dcols[n, (c * kh + i) * kw + j]
                    for oh in range(OH):
                        dst = plane[oh * stride + i, j:]
                        o = oh * OW
                        if stride == 1:
                            for ow in range(OW):
                                dst[ow] += row[o + ow]
                        else:
                            for ow in range(OW):
                                dst[ow * stride] += row[o + ow]
            out = dx[n, c]
            for h in range(H):
                src = plane[h + pad, pad:]
                dst = out[h]
                for w in range(W):
                    dst[w] = src[w]
    return dx


def col2im_numpy(dcols, kh, kw, stride, pad, dx):
    """Readable twin of :func:`col2im`: add each tap's slice back into a padded gradient."""
    N, C, H, W = dx.shape
    OH = conv_output_size(H, kh, stride, pad)
    OW = conv_output_size(W, kw, stride, pad)
    K = C * kh * kw
    view = dcols[:, :K, :].reshape(N, C, kh, kw, OH, OW)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dx.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += view[:, :, i, j]
    dx[...] = dxp[:, :, pad:pad + H, pad:pad + W]
    return dx
