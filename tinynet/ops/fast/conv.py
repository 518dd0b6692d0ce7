"""Convolution, fast: Numba im2col / col2im kernels around BLAS products (one per image,
but one per slice for dL/dW).

The math is ``conv2d_forward`` / ``conv2d_backward`` in ``tinynet/ops/reference.py``; the
layout (k = (c*kh + i)*kw + j for the K = C*kh*kw taps, p = oh*OW + ow for the P = OH*OW
output positions) is the same, so ``cols[n]`` is the reference's im2col of image n.

How the work is scheduled (timings of conv2 of PyTorch's examples/mnist network at batch 64
on two threads, as ``benchmarks/profile_conv.py`` measures them):

* The batch is cut into slices of a few images, and each worker thread runs a slice's whole
  pipeline, im2col then its products on a 1-thread BLAS (and, backward, dcols and col2im
  into its own rows of dL/dx; its share of dL/dW and dL/db is summed afterwards in slice
  order), so the copy is still in cache when the product reads it.
* Training keeps the input x, not ``cols`` (C*kh*kw times bigger): backward recomputes each
  slice's im2col copy, which was cheaper than reading a stored copy back from memory
  (10.5 + 21 ms instead of 12.6 + 24 ms, forward + backward).
* Backward lays that copy out with the slice's images side by side in each row
  (``im2col_side_by_side``), so that dL/dW is one product over the slice, summing over
  images and positions at once: per image, each product summed only OH*OW terms and ran at
  half the speed (conv2 of the fast recipe, batch 128: 2.2 against 4.4 ms on one core;
  the whole backward 0.79-0.82 of before on two threads, 0.87 on one).
* A first layer with few taps (one input channel) takes dL/dW and dL/db in one pass of its
  own, ``weight_grad_by_taps``, with no im2col copy and no products (see ``BY_TAPS_MAX``).
* The kernels are serial on purpose: a ``prange`` version of im2col + col2im was ~1.8x
  faster in isolation but no faster inside the whole step, interleaved with the products.
"""

import numpy as np
from numba import njit

from ..reference import conv_output_size
from .pool import larger
from .scheduler import chunk_for, row_scratch, run_chunks, scratch
from .winograd import _gate, _padded, conv2d_winograd_backward, conv2d_winograd_forward

# Work on slices of about this many bytes of ``cols`` at a time, one slice per worker
# thread, so that the im2col copy is still in the core's cache when the product reads it.
CHUNK_BYTES = 3 << 20
# At most this many images per slice, so the im2col buffer stays small even for a
# 10,000-image inference batch.
MAX_CHUNK_IMAGES = 64
# 3x3 stride-1 convolutions with at least this many input channels go through Winograd
# F(4x4, 3x3) (``winograd.py``): 4x fewer multiplications, measured 1.3x (forward) and 1.35x
# (backward) faster on conv2 of the examples CNN, 1.6x and 1.8x on conv4 of the shipped CNN;
# on its conv3 (a 10x10 output in 12x12 of tiles) about even. With one input channel (a
# network's first layer) the products are too thin to gain anything from it.
WINOGRAD_MIN_CHANNELS = 8
# A stride-1 layer with at most this many taps (C*kh*kw) and no dL/dx to compute (a network's
# first layer) takes dL/dW by taps (``weight_grad_by_taps``), in one pass over dout with
# the ReLU's mask and dL/db: its products are too thin for the BLAS (K columns), and the
# mask and the bias sum were two more passes. Backward of conv1, 2 threads, best of 30, 3
# alternating runs: examples CNN (batch 64) 2.3-2.6 -> 1.4-1.5 ms, shipped CNN (batch 128)
# 3.3-3.9 -> 3.0-3.2 ms, the fast recipe's 5x5 conv1 (batch 128) 2.8-3.2 -> 2.0-2.2 ms.
BY_TAPS_MAX = 32


def _winograd(W, stride):
    F, C, kh, kw = W.shape
    return kh == 3 and kw == 3 and stride == 1 and C >= WINOGRAD_MIN_CHANNELS


@njit(cache=True, nogil=True)
def add_bias(y, b, relu):
    """y[n, f, :] += b[f], then max(., 0) when ``relu`` (a NaN passes through, as in
    np.maximum), in one pass over y (N, F, P); returns ``y``. As two NumPy calls this was
    most of a first layer's time: for conv1 of the examples CNN, 8 + 15 microseconds per
    image against 2 for its im2col copy and 8 for its product (one core). It is the batch
    norm's ``norm.affine`` with a = 1 and m = 0, done in place: that kernel, given y as both
    input and output, ran scalar (LLVM's overlap check), and with the product in a scratch
    buffer it was still slower (conv1 forward, batch 64: 1.4 against 1.1-1.3 ms)."""
    N, F, P = y.shape
    for n in range(N):
        for f in range(F):
            bias = b[f]
            row = y[n, f]
            for p in range(P):
                v = row[p] + bias
                row[p] = 0 if relu and v < 0 else v
    return y


@njit(cache=True, nogil=True)
def bias_pool(y, OW, b, relu, out, arg):
    """out[n, f, ph, pw] = max of the 2x2 window (2ph.., 2pw..) of y[n, f] + b[f], then
    max(., 0) when ``relu``; arg = where that maximum was, as the flat index oh*OW + ow
    (ties to the first in row-major order, as ``pool._maxpool2x2_forward``). ``y`` is
    (N, F, OH*OW), the slice's product; an odd last row or column is dropped. The bias and
    the ReLU's floor are added after the maximum, not before (the same values: rounding
    and the floor keep the order), so this is conv -> ReLU -> pool in one pass over y,
    which is still in cache, instead of two more over the unpooled output."""
    N, F, P = y.shape
    PH, PW = out.shape[2], out.shape[3]
    for n in range(N):
        for f in range(F):
            plane = y[n, f]
            bias = b[f]
            for ph in range(PH):
                top = 2 * ph * OW
                orow = out[n, f, ph]
                arow = arg[n, f, ph]
                for pw in range(PW):
                    at = top + 2 * pw
                    best, where = plane[at], at
                    best, where = larger(plane[at + 1], at + 1, best, where)
                    best, where = larger(plane[at + OW], at + OW, best, where)
                    best, where = larger(plane[at + OW + 1], at + OW + 1, best, where)
                    v = best + bias
                    orow[pw] = 0 if relu and v < 0 else v
                    arow[pw] = where
    return out


@njit(cache=True, nogil=True)
def add_bias_last(y, b, relu):
    """``add_bias`` for y laid out channels last, (N, P, F): y[n, p, :] += b, then max(., 0)
    when ``relu``, in one pass; returns ``y``."""
    N, P, F = y.shape
    for n in range(N):
        for p in range(P):
            row = y[n, p]
            for f in range(F):
                v = row[f] + b[f]
                row[f] = 0 if relu and v < 0 else v
    return y


def by_image(rows, n, P):
    """The (n, R, P) view, image by image, of ``rows`` (R, at least n*P) holding the n images
    of a slice side by side in each row (the layout of ``im2col``): what np.matmul needs to
    take one product per image, with no copy."""
    return rows[:, :n * P].reshape(rows.shape[0], n, P).transpose(1, 0, 2)


@njit(cache=True, nogil=True)
def grad_side_by_side(G, mask, masked, arg, pooled, P, G2, db):
    """G2[f, n*P + p] = G'[n, f, p], the images of dL/dy side by side in each filter's row
    (the layout of ``im2col_side_by_side``), and db[f] += sum_{n, p} G'[n, f, p] (in
    float64), in one pass; G' is G, or, when ``masked`` (a fused ReLU), G where mask > 0
    and 0 elsewhere. When ``pooled`` (a fused 2x2 max-pool), G and mask are the pooled
    ones, (N, F, Q), and G'[n, f, q] goes to position arg[n, f, q] of the P, all others 0:
    the max-pool's backward, done here instead of in a pass of its own over dL/dy. Returns
    ``G2``, whose rows may be longer than N*P (``row_scratch``)."""
    N, F, Q = G.shape
    for f in range(F):
        total = 0.0
        for n in range(N):
            src = G[n, f]
            m = mask[n, f]
            dst = G2[f, n * P:(n + 1) * P]
            if pooled:
                at = arg[n, f]
                for p in range(P):
                    dst[p] = 0
                for q in range(Q):
                    v = _gate(src[q], m[q], masked)
                    dst[at[q]] = v
                    total += v
            else:
                for p in range(P):
                    v = _gate(src[p], m[p], masked)
                    dst[p] = v
                    total += v
        db[f] += total
    return G2


def im2col(x, kh, kw, stride, pad, cols):
    """Fill ``cols`` (N, C*kh*kw, OH*OW) from ``x`` (N, C, H, W); returns ``cols``.

    With padding, the input is first copied into a zero-padded buffer (small next to
    ``cols``), so the copy loops never test bounds: ``winograd._padded``, whose kernel is
    compiled only when a layer pads (the fast recipe's network does not)."""
    N, C, H, W = x.shape
    K, P = cols.shape[1], cols.shape[2]
    _im2col(_padded(x, pad, H + 2 * pad, W + 2 * pad, "conv_xp"), kh, kw, stride,
            cols.reshape(-1), P, K * P)
    return cols


def im2col_side_by_side(x, kh, kw, stride, pad, rows):
    """Fill ``rows`` (C*kh*kw, at least N*OH*OW) with im2col(x) in another layout: each row
    k holds tap k of every image, one image after the other (``rows[:, n*P:(n + 1)*P]`` is
    image n's cols, P = OH*OW), so that one product takes the whole slice, as dL/dW's does.
    ``rows`` is C-contiguous and may have rows longer than N*P (``row_scratch``)."""
    N, C, H, W = x.shape
    P = conv_output_size(H, kh, stride, pad) * conv_output_size(W, kw, stride, pad)
    _im2col(_padded(x, pad, H + 2 * pad, W + 2 * pad, "conv_xp"), kh, kw, stride,
            rows.reshape(-1), rows.shape[1], P)
    return rows


@njit(cache=True, nogil=True)
def _im2col(xp, kh, kw, stride, flat, row_step, image_step):
    """im2col of the padded ``xp`` into the flat buffer ``flat``: tap k of image n goes to
    the P = OH*OW values at k*row_step + n*image_step. The loops run over (n, c, i, j) -> one
    row of cols, then over output rows oh and columns ow, so the writes are contiguous; with
    stride 1 the reads are contiguous too and LLVM vectorises the inner loop. (Index
    arithmetic on 1-D views with loop counters starting at 0 matters here: it lets LLVM
    prove indices are non-negative and drop Numba's negative-index wraparound test, which
    otherwise blocks vectorisation. A kernel of its own for stride 1, without the test of
    the stride, ran 2x slower on the fast recipe's two layers: LLVM vectorised its short
    rows worse.)"""
    N, C, HP, WP = xp.shape
    OH = (HP - kh) // stride + 1
    OW = (WP - kw) // stride + 1
    P = OH * OW
    for n in range(N):
        for c in range(C):
            plane = xp[n, c]
            for i in range(kh):
                for j in range(kw):
                    start = ((c * kh + i) * kw + j) * row_step + n * image_step
                    row = flat[start:start + P]
                    for oh in range(OH):
                        src = plane[oh * stride + i, j:]
                        o = oh * OW
                        if stride == 1:
                            for ow in range(OW):
                                row[o + ow] = src[ow]
                        else:
                            for ow in range(OW):
                                row[o + ow] = src[ow * stride]


@njit(cache=True, nogil=True)
def col2im(dcols, kh, kw, stride, pad, dx, plane):
    """Accumulate ``dcols`` (N, C*kh*kw, OH*OW) into ``dx`` (N, C, H, W); returns ``dx``.

    ``dx`` is overwritten. Same loops as
    :func:`im2col` with += instead of =, into ``plane``, a zero-padded (H + 2 pad, W + 2 pad)
    buffer whose border (the gradient of the padding) is dropped at the end. (The caller
    gives the buffer: allocating it here compiled NumPy's np.empty for the kernel, a fifth
    of a second of a cold start.)
    """
    N, C, H, W = dx.shape
    OH = (H + 2 * pad - kh) // stride + 1
    OW = (W + 2 * pad - kw) // stride + 1
    HP = H + 2 * pad
    WP = W + 2 * pad
    flat = plane.reshape(HP * WP)
    for n in range(N):
        for c in range(C):
            for q in range(HP * WP):
                flat[q] = 0
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


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def weight_grad_by_taps(G, mask, masked, xp, kh, kw, dW, db):
    """A stride-1 layer's dW[f, c, i, j] += sum_{oh, ow} G'[n, f, oh, ow] * xp[n, c, oh + i,
    ow + j] and db[f] += sum G'[n, f] (each image's sums added in float64), with G' = G,
    or, when ``masked`` (a fused ReLU), G where mask > 0 and 0 elsewhere; ``xp`` is the input,
    already padded. Each tap's gradient is the correlation of G' with the input shifted by
    (i, j): the cols formula without the cols copy (``_correlate_taps``).

    G' goes into a plane as wide as xp's rows, zeros past OW, so that tap (i, j) is one sum
    over a flat run: sum_q g[q] * xflat[q + i*WP + j], long enough for LLVM to vectorise (a
    row of 24-28 outputs was too short for its vector loop)."""
    N, F, OH, OW = G.shape
    WP = xp.shape[3]
    g = np.zeros(OH * WP, dtype=G.dtype)
    for n in range(N):
        for f in range(F):
            total = G.dtype.type(0)
            for oh in range(OH):
                grow = G[n, f, oh]
                mrow = mask[n, f, oh]
                gout = g[oh * WP:oh * WP + OW]
                for ow in range(OW):
                    v = _gate(grow[ow], mrow[ow], masked)
                    gout[ow] = v
                    total += v
            db[f] += total
            _correlate_taps(g, xp, n, f, kh, kw, dW)
    return dW


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def weight_grad_by_taps_pooled(G, mask, masked, arg, xp, kh, kw, g, dW, db):
    """``weight_grad_by_taps`` after a fused 2x2 max-pool: G and mask are the pooled ones, and
    each G' value sits at its window's maximum, flat index arg[n, f, ph, pw] = oh*OW + ow,
    the rest of the plane being 0 (the max-pool's backward, without writing the unpooled
    dL/dy out). A kernel of its own, so that each compiles only when a network needs it.
    ``g`` (OH*WP values) comes from the caller: allocated here, as the other kernel does,
    it compiled NumPy's np.zeros for the kernel, a fifth of a second of the fast recipe's
    cold start. (Given to that kernel, it made it 5-10% slower: LLVM must then allow for
    g sharing memory with the arrays the kernel reads.)"""
    N, F, PH, PW = G.shape
    HP, WP = xp.shape[2], xp.shape[3]
    OH, OW = HP - kh + 1, WP - kw + 1
    for n in range(N):
        for f in range(F):
            total = G.dtype.type(0)
            for q in range(OH * WP):
                g[q] = 0
            for ph in range(PH):
                grow = G[n, f, ph]
                mrow = mask[n, f, ph]
                arow = arg[n, f, ph]
                for pw in range(PW):
                    v = _gate(grow[pw], mrow[pw], masked)
                    oh = arow[pw] // OW
                    g[oh * WP + arow[pw] - oh * OW] = v
                    total += v
            db[f] += total
            _correlate_taps(g, xp, n, f, kh, kw, dW)
    return dW


@njit(cache=True, inline="always", fastmath={"reassoc", "contract"})
def _correlate_taps(g, xp, n, f, kh, kw, dW):
    """dW[f, c, i, j] += sum_q g[q] * xp[n, c].flat[q + i*WP + j] for every tap: the plane g
    (G' of image n, filter f, as wide as xp's rows) against the input shifted by (i, j). The
    run stops kw - 1 short of the plane's end: those entries of g are zeros of its last row,
    and the input plane ends there."""
    C, HP, WP = xp.shape[1], xp.shape[2], xp.shape[3]
    run = (HP - kh + 1) * WP - (kw - 1)
    for c in range(C):
        xflat = xp[n, c].reshape(-1)
        for i in range(kh):
            for j in range(kw):
                # a slice, not xflat[q + shift]: Numba's check for a negative index would
                # stop the vectorising (measured 14x slower)
                shifted = xflat[i * WP + j:i * WP + j + run]
                acc = g.dtype.type(0)
                for q in range(run):
                    acc += g[q] * shifted[q]
                dW[f, c, i, j] += acc


# the positions argument of the kernels below when no max-pool is fused (never read)
_NO_POSITIONS = np.zeros((1, 1, 1, 1), np.int32)


def conv2d_forward(x, W, b, stride, pad, relu=False, pool=False, saved=None,
                   channels_last=False):
    """The reference's ``conv2d_forward``. With ``pool``, the 2x2 max-pool is taken in the
    pass that adds the bias, so the unpooled output is never written out. With
    ``channels_last`` (and no pool), y is a view of a C-contiguous (N, OH, OW, F) array, each
    image's product taken as cols[n]^T Wm^T (P, F): the same values, for a Winograd
    convolution after this one, which reads them so faster (``conv2d_reads_channels_last``)."""
    if _winograd(W, stride):
        return conv2d_winograd_forward(x, W, b, pad, relu, pool, saved)
    channels_last = channels_last and not pool
    F, C, kh, kw = W.shape
    x = np.ascontiguousarray(x, dtype=W.dtype)
    N, _, H, Wd = x.shape
    OH, OW = conv_output_size(H, kh, stride, pad), conv_output_size(Wd, kw, stride, pad)
    K, P = C * kh * kw, OH * OW
    Wm, bias = W.reshape(F, K), np.ascontiguousarray(b, dtype=W.dtype)
    if pool:
        y = np.empty((N, F, OH // 2, OW // 2), dtype=W.dtype)
        arg = np.empty(y.shape, dtype=np.int32)
        if saved is not None:
            saved["pool"] = (arg, (N, F, OH, OW))     # where each maximum was, as pool_fused
    else:
        y = np.empty((N, P, F) if channels_last else (N, F, P), dtype=W.dtype)

    def part(s, e):
        cols = im2col(x[s:e], kh, kw, stride, pad, scratch("conv_cols", (e - s, K, P), W.dtype))
        if pool:
            product = scratch("conv_y", (e - s, F, P), W.dtype)
            np.matmul(Wm, cols, out=product)       # one BLAS call per image
            bias_pool(product, OW, bias, relu, y[s:e], arg[s:e])
        elif channels_last:
            np.matmul(cols.transpose(0, 2, 1), Wm.T, out=y[s:e])
            add_bias_last(y[s:e], bias, relu)
        else:
            np.matmul(Wm, cols, out=y[s:e])
            add_bias(y[s:e], bias, relu)           # while this slice is in cache

    chunk = min(chunk_for(N, K * P * W.dtype.itemsize, CHUNK_BYTES), MAX_CHUNK_IMAGES)
    run_chunks(part, N, chunk)
    if pool:
        return y
    if channels_last:
        return y.reshape(N, OH, OW, F).transpose(0, 3, 1, 2)
    return y.reshape(N, F, OH, OW)


def conv2d_reads_channels_last(W, stride, pad):
    """The Winograd forward does (``winograd.input_transform_last``, any padding); the
    im2col path would copy such an input back to NCHW first."""
    return _winograd(W, stride)


def conv2d_backward(dout, x, W, stride, pad, need_dx=True, relu_out=None, saved=None):
    if _winograd(W, stride):
        return conv2d_winograd_backward(dout, x, W, pad, need_dx, relu_out, saved)
    F, C, kh, kw = W.shape
    dt = W.dtype
    pooled = bool(saved) and "pool" in saved
    # dout and relu_out are the pooled ones after a fused max-pool; the kernels route them
    # to where the maxima were as they read them
    arg, (N, _, OH, OW) = saved.pop("pool") if pooled else (_NO_POSITIONS, dout.shape)
    G = np.ascontiguousarray(dout, dtype=dt)
    masked = relu_out is not None
    mask = np.ascontiguousarray(relu_out, dtype=dt) if masked else G
    x = np.ascontiguousarray(x, dtype=dt)
    if stride == 1 and not need_dx and C * kh * kw <= BY_TAPS_MAX:
        return (None, *_weight_grad_by_taps(G, mask, masked, arg, pooled, x, W, pad))
    K, P = C * kh * kw, OH * OW
    G, mask = G.reshape(N, F, -1), mask.reshape(N, F, -1)     # (N, F, P), pooled (N, F, Q)
    arg = arg.reshape(arg.shape[0], arg.shape[1], -1)
    Wm = W.reshape(F, K)
    dx = np.empty(x.shape, dtype=dt) if need_dx else None

    def part(s, e):
        n = e - s
        cols = im2col_side_by_side(x[s:e], kh, kw, stride, pad,
                                   row_scratch("conv_rows", K, n * P, dt))
        db = np.zeros(F)
        G2 = grad_side_by_side(G[s:e], mask[s:e], masked, arg[s:e] if pooled else arg, pooled,
                               P, row_scratch("conv_g", F, n * P, dt), db)[:, :n * P]
        # this slice's share of dL/dWm = G2 @ cols^T in one product (one per image was 2x
        # slower: a sum of only P = OH*OW terms per call), taken as its transpose cols @ G2^T
        # (K, F), the order the BLAS was faster in (the transposes are views it reads in place)
        dWt = cols[:, :n * P] @ G2.T
        if dx is not None:
            # dcols, though, one product per image: faster than one for the slice
            dcols = scratch("conv_dcols", (n, K, P), dt)
            np.matmul(Wm.T, by_image(G2, n, P), out=dcols)
            col2im(dcols, kh, kw, stride, pad, dx[s:e],
                   scratch("conv_plane", (x.shape[2] + 2 * pad, x.shape[3] + 2 * pad), dt))
        return dWt, db

    chunk = min(chunk_for(N, K * P * dt.itemsize, CHUNK_BYTES), MAX_CHUNK_IMAGES)
    parts = run_chunks(part, N, chunk)
    dWt = sum(p[0] for p in parts)   # in slice order, so the sum never depends on timing
    db = sum(p[1] for p in parts).astype(dt)
    return dx, np.ascontiguousarray(dWt.T).reshape(W.shape), db


def _weight_grad_by_taps(G, mask, masked, arg, pooled, x, W, pad):
    """(dW, db) of a stride-1 convolution by ``weight_grad_by_taps``, slices of the batch
    side by side, their sums added in slice order."""
    F, C, kh, kw = W.shape
    dt = W.dtype
    N, _, H, Wd = x.shape
    HP, WP = H + 2 * pad, Wd + 2 * pad

    def part(s, e):
        dW, db = np.zeros((F, C, kh, kw)), np.zeros(F)
        xp = _padded(x[s:e], pad, HP, WP, "conv_xp")
        if pooled:
            g = scratch("conv_taps_g", ((HP - kh + 1) * WP,), dt)
            weight_grad_by_taps_pooled(G[s:e], mask[s:e], masked, arg[s:e], xp, kh, kw, g, dW,
                                       db)
        else:
            weight_grad_by_taps(G[s:e], mask[s:e], masked, xp, kh, kw, dW, db)
        return dW, db

    per_image = C * HP * WP + 2 * G[0].size
    parts = run_chunks(part, N, chunk_for(N, per_image * dt.itemsize, CHUNK_BYTES))
    return sum(p[0] for p in parts).astype(dt), sum(p[1] for p in parts).astype(dt)
