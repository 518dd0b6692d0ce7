"""3x3 stride-1 convolution by Winograd F(4x4, 3x3), fast: Numba tile transforms around 36
BLAS products per slice of the batch.

The math is ``conv2d_winograd_forward`` / ``conv2d_winograd_backward`` in
``tinynet/ops/reference.py``. Why: im2col spends 144 multiply-adds per 4x4 output tile per
(filter, channel); the Winograd domain needs 36, so the products, which are most of a CNN's
training time, shrink 4x. The transforms are a few additions and multiplications by small
constants per value, and their arrays are smaller than im2col's copy (36 values per 16
outputs, against 9 per output). F(2x2, 3x3) was tried first: 2.25x fewer multiplications,
but four times as many tiles, and 16 values per 4 outputs to write and read back; measured
on conv2 of the examples CNN, F(4x4) is the faster of the two (0.19 against 0.235 ms per
image forward, 0.35 against 0.49 backward, one core). Its float32 error is a few times that
of the direct product (tests/test_winograd.py bounds it).

Layout: a slice of n images has T = n*TH*TW tiles, t = (image, tile row, tile column).
Forward, per slice: the input kernel fills V^T (36, T, C) (entry ij of each input tile's
B^T d B, channels last), the BLAS computes M^T[ij] = V^T[ij] @ U^T[ij] as one stacked
(36, T, C) @ (36, C, F) product, and the output kernel turns M^T (36, T, F) into y. With
the channels, then the filters, last, the transforms vectorise over them (a tile row is only
six tiles wide); the forward of conv2 in the examples CNN went from 12.4 to 10.7 ms (batch
64, two threads; 19.4 to 14.5 on one), against V (36, C, T) and M (36, F, T) before, with
the transforms going tile by tile or filter by filter. Backward, per slice: A dY (24 values
a tile) from dout, then dM = (A dY) A^T six of its 36 (F, T) matrices at a time, each six
used at once by dU = dM @ V^T (F, C) and dV = U^T @ dM (C, T) and dV by the first half of
the adjoint of the input transform (dV B^T); the second half adds B (dV B^T) back into the
overlapping input tiles. Six matrices of dM stay in the L2 cache; all 36 (1.3 MB for conv2
of the examples CNN) did not. In training
(``saved``, a dict the layer passes to both directions) the forward keeps each slice's V^T
there for the backward: writing it once and reading it back was cheaper than recomputing it
from x (conv backward of the shipped CNN, batch 128: 33.7 -> 27.1, 16.1 -> 13.2 and 12.0 ->
10.5 ms, for 31 MB kept from forward to backward). At inference it goes into a reused
scratch buffer.

Each worker thread runs one slice's whole pipeline on a 1-thread BLAS, so the transform
arrays (about ``CHUNK_BYTES``) stay in its cache between the kernels and the products.
"""

import threading
from collections import OrderedDict

import numpy as np
from numba import njit

from ..reference import WINOGRAD_G
from .elementwise import relu_backward
from .scheduler import chunk_for, row_scratch, run_chunks, scratch

# The transforms' coefficients, passed in the data's dtype, and the lower bound of outputs.
CONSTANTS = (2, 4, 5, 8, -np.inf)


def constants(dtype, lo=-np.inf):
    """``k``, as every kernel here takes it: the coefficients (2, 4, 5, 8) and the outputs'
    lower bound (0 for a fused ReLU, -inf for none), a tuple of ``dtype`` scalars. A tuple,
    not an array: values no store can change, so LLVM keeps them in registers; read from an
    array inside a loop that stores to another array, they stopped the loop vectorising (the
    array might alias the output: the pooled output kernel took 10.9 against 7.1 ms per
    training step of conv2 in the examples CNN, one thread)."""
    return tuple(np.array(CONSTANTS[:4] + (lo,), dtype=dtype))


# Bytes of V and M per slice: about four images of conv2 in the examples CNN (T = 144 tiles).
# With F(2x2), slices of one or two images were fastest (0.16 ms per image forward, eight
# images 0.20, sixteen 0.26); with F(4x4), 1, 2 and 4 MB measured within noise of each other.
CHUNK_BYTES = 2 << 20


# The four 1-D transforms, applied along the columns then along the rows of each tile. The
# coefficients are written out (rather than read from the matrices) so that zeros cost
# nothing and each tile stays in registers. The constants come in ``k`` = (2, 4, 5, 8) in the
# arrays' dtype: with plain integer literals Numba would compute float32 data in float64.

@njit(cache=True)
def _bt(d0, d1, d2, d3, d4, d5, k):
    """B^T d: a 6-vector of the input into the Winograd domain."""
    k2, k4, k5 = k[0], k[1], k[2]
    return (k4 * d0 - k5 * d2 + d4,
            d3 + d4 - k4 * (d1 + d2),
            d4 - d3 + k4 * (d1 - d2),
            d4 - d2 + k2 * (d3 - d1),
            d4 - d2 + k2 * (d1 - d3),
            k4 * d1 - k5 * d3 + d5)


@njit(cache=True)
def _b(v0, v1, v2, v3, v4, v5, k):
    """B v: the adjoint of _bt, a 6-vector of gradients back to the input."""
    k2, k4, k5 = k[0], k[1], k[2]
    return (k4 * v0,
            k4 * (v2 - v1 + v5) + k2 * (v4 - v3),
            -k5 * v0 - k4 * (v1 + v2) - v3 - v4,
            v1 - v2 + k2 * (v3 - v4) - k5 * v5,
            v0 + v1 + v2 + v3 + v4,
            v5)


@njit(cache=True)
def _at(m0, m1, m2, m3, m4, m5, k):
    """A^T m: a 6-vector of the Winograd domain to 4 outputs."""
    k2, k4, k8 = k[0], k[1], k[3]
    return (m0 + m1 + m2 + m3 + m4,
            m1 - m2 + k2 * (m3 - m4),
            m1 + m2 + k4 * (m3 + m4),
            m1 - m2 + k8 * (m3 - m4) + m5)


@njit(cache=True)
def _a(y0, y1, y2, y3, k):
    """A y: the adjoint of _at, 4 output gradients into the Winograd domain."""
    k2, k4, k8 = k[0], k[1], k[3]
    return (y0,
            y0 + y1 + y2 + y3,
            y0 - y1 + y2 - y3,
            y0 + k2 * y1 + k4 * y2 + k8 * y3,
            y0 - k2 * y1 + k4 * y2 - k8 * y3,
            y3)


@njit(cache=True)
def _max4(a, b, c, d):
    """The largest of four values (a NaN among them may or may not win)."""
    ab = a if a >= b else b
    cd = c if c >= d else d
    return ab if ab >= cd else cd


@njit(cache=True)
def _argmax4(a, b, c, d):
    """Where the largest of four values is (0-3), by the comparisons _max4 makes: ties to
    the earlier one. Selects, not branches, as ``pool.larger``."""
    first = a >= b
    third = c >= d
    left = (a if first else b) >= (c if third else d)
    # the position from the comparisons, in int8 arithmetic: about 2x faster than selecting
    # among constants, in a test kernel that pooled conv2 of the examples CNN (45-48 against
    # 94-107 microseconds per image, one core)
    return np.int8(1 - first) if left else np.int8(3 - third)


@njit(cache=True)
def _floor(z, lo):
    """max(z, lo), written so that a NaN passes through, as in np.maximum."""
    return lo if z < lo else z


@njit(cache=True)
def _gate(g, m, masked):
    """The gradient g through a fused ReLU whose output was m: g if m > 0, else 0."""
    return g if (not masked or m > 0) else g * 0


@njit(cache=True)
def _a_column(g0, g1, g2, g3, m0, m1, m2, m3, j, masked, k):
    """_a of column j of the 4x4 gradient tile in rows g0..g3, each entry gated by the
    fused ReLU's output in rows m0..m3 when ``masked``."""
    return _a(_gate(g0[j], m0[j], masked), _gate(g1[j], m1[j], masked),
              _gate(g2[j], m2[j], masked), _gate(g3[j], m3[j], masked), k)


@njit(cache=True)
def _put_column(Z, row, p, v):
    """Z[row + i, p] = v[i] for the six values of v."""
    Z[row, p] = v[0]
    Z[row + 1, p] = v[1]
    Z[row + 2, p] = v[2]
    Z[row + 3, p] = v[3]
    Z[row + 4, p] = v[4]
    Z[row + 5, p] = v[5]


@njit(cache=True, inline="always")
def _six_rows(plane, h):
    """Rows h..h+5 of an image plane: the rows of a row of 6x6 tiles."""
    return plane[h], plane[h + 1], plane[h + 2], plane[h + 3], plane[h + 4], plane[h + 5]


@njit(cache=True, inline="always")
def _put_bt_column(Q, w, c, q):
    """Q[:, w, c] = q, the six values of B^T d down one column of six image rows."""
    Q[0, w, c] = q[0]
    Q[1, w, c] = q[1]
    Q[2, w, c] = q[2]
    Q[3, w, c] = q[3]
    Q[4, w, c] = q[4]
    Q[5, w, c] = q[5]


@njit(cache=True, inline="always")
def _times_b(Q, t0, TW, Vt, k):
    """The input kernels' second pass: B along each tile's six columns of Q (6, >= 4TW+2, C),
    B^T d of a row of tiles with the channels last, all channels at once, into tiles
    t0 .. t0 + TW - 1 of Vt."""
    C = Q.shape[2]
    for tw in range(TW):
        t = t0 + tw
        w = 4 * tw
        for i in range(6):
            for c in range(C):
                v = _bt(Q[i, w, c], Q[i, w + 1, c], Q[i, w + 2, c], Q[i, w + 3, c],
                        Q[i, w + 4, c], Q[i, w + 5, c], k)
                Vt[6 * i, t, c] = v[0]
                Vt[6 * i + 1, t, c] = v[1]
                Vt[6 * i + 2, t, c] = v[2]
                Vt[6 * i + 3, t, c] = v[3]
                Vt[6 * i + 4, t, c] = v[4]
                Vt[6 * i + 5, t, c] = v[5]


@njit(cache=True, nogil=True)
def input_transform(xp, TH, TW, Vt, k):
    """Vt[6i+j, t, c] = (B^T d B)[i, j] for the 6x6 tile d of image plane xp[n, c] that starts
    at (4*th, 4*tw), t = (n*TH + th)*TW + tw. xp (n, C, >= 4TH+2, >= 4TW+2); Vt (36, T, C):
    the tiles' values with the channels last, as the products want them (see
    ``conv2d_winograd_forward``).

    Two passes per row of tiles, each a loop along memory that LLVM turns into vector
    instructions: B^T down the columns of six image rows, a channel at a time, along the
    row (into Q[i, w, c], channels last), then B along each tile's six columns of Q, all
    channels at once. It is no faster than the kernel before, which went tile by tile in
    scalar instructions and wrote V (36, C, T) (conv2 of the examples CNN, one core, both in
    one process: 46 against 51 microseconds per image with the input in cache, 68 against 59
    streaming it from memory), but training needs V^T, which that one then had to copy
    (65-81 microseconds with the copy)."""
    N, C = xp.shape[0], xp.shape[1]
    WP = 4 * TW + 2
    Q = np.empty((6, WP, C), xp.dtype)
    for n in range(N):
        for th in range(TH):
            h = 4 * th
            for c in range(C):             # B^T d down the columns of rows h..h+5
                plane = xp[n, c]
                r0, r1, r2, r3, r4, r5 = _six_rows(plane, h)
                for w in range(WP):
                    _put_bt_column(Q, w, c, _bt(r0[w], r1[w], r2[w], r3[w], r4[w], r5[w], k))
            _times_b(Q, (n * TH + th) * TW, TW, Vt, k)
    return Vt


@njit(cache=True, nogil=True)
def input_transform_last(xl, TH, TW, Vt, k):
    """``input_transform`` of an input laid out channels last, xl (n, >= 4TH+2, >= 4TW+2, C):
    the same Vt, bit for bit. Its first pass runs along the channels of each pixel, so it
    loads and stores with unit strides where the other stores a channel at a time across Q
    (conv2 of the examples CNN, one core, in isolation: 23 against 34 microseconds per
    image). A convolution whose output feeds this one lays it out so when asked
    (``conv.conv2d_forward``'s ``channels_last``)."""
    N, C = xl.shape[0], xl.shape[3]
    WP = 4 * TW + 2
    Q = np.empty((6, WP, C), xl.dtype)
    for n in range(N):
        for th in range(TH):
            h = 4 * th
            r0, r1, r2, r3, r4, r5 = _six_rows(xl[n], h)
            for w in range(WP):            # B^T d down the columns of rows h..h+5
                a0, a1, a2, a3, a4, a5 = r0[w], r1[w], r2[w], r3[w], r4[w], r5[w]
                for c in range(C):
                    _put_bt_column(Q, w, c, _bt(a0[c], a1[c], a2[c], a3[c], a4[c], a5[c], k))
            _times_b(Q, (n * TH + th) * TW, TW, Vt, k)
    return Vt


# The two output kernels below (plain and pooled) take the products' M^T (36, T, F), a
# tile's values with the filters last, and work a tile at a time with the filters innermost:
# A^T down the tile's six columns into S (``_columns``), then along its rows (``_row``), each
# a loop over F values side by side, which LLVM turns into vector instructions; only the
# last step, to the image planes (n, F, ...), stores value by value. Per image of conv2 in
# the examples CNN (one core), the output transform with the fused 2x2 max-pool and its
# positions took 27 against 53 microseconds for the kernel before, which went a filter at a
# time over M (36, F, T); and the product, (T, C) @ (C, F) instead of (F, C) @ (C, T), 50
# against 60.

@njit(cache=True, inline="always")
def _columns(Mt, t, k, S):
    """S[a, j, f] = (A^T M)[a, j] for the 6x6 M of tile t, filter f (Mt[6i + j, t, f])."""
    for j in range(6):
        for f in range(S.shape[2]):
            s = _at(Mt[j, t, f], Mt[6 + j, t, f], Mt[12 + j, t, f], Mt[18 + j, t, f],
                    Mt[24 + j, t, f], Mt[30 + j, t, f], k)
            S[0, j, f] = s[0]
            S[1, j, f] = s[1]
            S[2, j, f] = s[2]
            S[3, j, f] = s[3]


@njit(cache=True, inline="always")
def _row(S, a, f, k):
    """Row a of the tile's 4x4 output for filter f: (A^T M A)[a, :] from S."""
    return _at(S[a, 0, f], S[a, 1, f], S[a, 2, f], S[a, 3, f], S[a, 4, f], S[a, 5, f], k)


@njit(cache=True, nogil=True)
def output_transform(Mt, b, TH, TW, y, k):
    """y[n, f, 4th + a, 4tw + e] = (A^T M A)[a, e] + b[f] for each tile t of image n, M the
    6x6 of Mt[:, t, f] (entry 6i + j at row i, column j). y (n, F, 4TH, 4TW): whole tiles
    (the caller crops odd sizes), so the loop has no edge cases. Values below k[4] become
    k[4]: 0 for a fused ReLU, -inf for none."""
    N, F = y.shape[0], y.shape[1]
    lo = k[4]
    S = np.empty((4, 6, F), y.dtype)
    Y = np.empty((16, F), y.dtype)          # output (a, e) of the tile at [4a + e]
    for n in range(N):
        for th in range(TH):
            for tw in range(TW):
                _columns(Mt, (n * TH + th) * TW + tw, k, S)
                for f in range(F):
                    bias = b[f]
                    for a in range(4):
                        r = _row(S, a, f, k)
                        Y[4 * a, f] = _floor(r[0] + bias, lo)
                        Y[4 * a + 1, f] = _floor(r[1] + bias, lo)
                        Y[4 * a + 2, f] = _floor(r[2] + bias, lo)
                        Y[4 * a + 3, f] = _floor(r[3] + bias, lo)
                for f in range(F):          # the tile's 4x4 to its place in each plane
                    out = y[n, f]
                    for a in range(4):
                        row = out[4 * th + a]
                        row[4 * tw] = Y[4 * a, f]
                        row[4 * tw + 1] = Y[4 * a + 1, f]
                        row[4 * tw + 2] = Y[4 * a + 2, f]
                        row[4 * tw + 3] = Y[4 * a + 3, f]
    return y


@njit(cache=True, inline="always")
def _pool_tile(S, b, lo, k, P):
    """P[2p + q, f]: the tile's 2x2 maxima (window row p, column q) for every filter f, plus
    b[f], floored at lo. Max then bias and floor: both are monotone, so the order is free."""
    for f in range(P.shape[1]):
        r0 = _row(S, 0, f, k)
        r1 = _row(S, 1, f, k)
        r2 = _row(S, 2, f, k)
        r3 = _row(S, 3, f, k)
        bias = b[f]
        P[0, f] = _floor(_max4(r0[0], r0[1], r1[0], r1[1]) + bias, lo)
        P[1, f] = _floor(_max4(r0[2], r0[3], r1[2], r1[3]) + bias, lo)
        P[2, f] = _floor(_max4(r2[0], r2[1], r3[0], r3[1]) + bias, lo)
        P[3, f] = _floor(_max4(r2[2], r2[3], r3[2], r3[3]) + bias, lo)


@njit(cache=True, inline="always")
def _put_pooled(out, n, f, th, tw, v0, v1, v2, v3):
    """A tile's 2x2 of pooled values (or positions) to its place in plane (n, f) of ``out``
    (indexed whole: a view of the plane per store was 2x slower)."""
    out[n, f, 2 * th, 2 * tw] = v0
    out[n, f, 2 * th, 2 * tw + 1] = v1
    out[n, f, 2 * th + 1, 2 * tw] = v2
    out[n, f, 2 * th + 1, 2 * tw + 1] = v3


@njit(cache=True, nogil=True)
def output_transform_pool(Mt, b, TH, TW, y, k, where, positions):
    """:func:`output_transform` followed by a 2x2, stride-2 max-pool, into y (n, F, 2TH, 2TW):
    the pooling windows never straddle two 4x4 tiles, so each tile gives its 2x2 of maxima
    without the full-size output ever being written. With ``positions`` (training), also
    where each maximum was, into ``where`` (int8, y's shape), as 2*row + column inside its
    window, ties to the first (the max-pool's argmax), for :func:`pooled_grad_transform`;
    without, ``where`` is not touched (pass y). The positions take a loop of their own,
    which recomputes the tile's rows: with their stores in the maxima's loop, LLVM did not
    vectorise it (in an earlier kernel: 3x slower)."""
    N, F = y.shape[0], y.shape[1]
    lo = k[4]
    S = np.empty((4, 6, F), y.dtype)
    P = np.empty((4, F), y.dtype)           # pooled (p, q) of the tile at [2p + q]
    A = np.empty((4, F), y.dtype)           # where the maximum of P[q] was, as a float
    for n in range(N):
        for th in range(TH):
            for tw in range(TW):
                _columns(Mt, (n * TH + th) * TW + tw, k, S)
                _pool_tile(S, b, lo, k, P)
                for f in range(F):
                    _put_pooled(y, n, f, th, tw, P[0, f], P[1, f], P[2, f], P[3, f])
                if not positions:
                    continue
                for f in range(F):
                    r0 = _row(S, 0, f, k)
                    r1 = _row(S, 1, f, k)
                    r2 = _row(S, 2, f, k)
                    r3 = _row(S, 3, f, k)
                    A[0, f] = _argmax4(r0[0], r0[1], r1[0], r1[1])
                    A[1, f] = _argmax4(r0[2], r0[3], r1[2], r1[3])
                    A[2, f] = _argmax4(r2[0], r2[1], r3[0], r3[1])
                    A[3, f] = _argmax4(r2[2], r2[3], r3[2], r3[3])
                for f in range(F):
                    _put_pooled(where, n, f, th, tw, np.int8(A[0, f]), np.int8(A[1, f]),
                                np.int8(A[2, f]), np.int8(A[3, f]))
    return y


@njit(cache=True, nogil=True)
def output_grad_transform(dy, TH, TW, Z, db, k, mask, masked):
    """Z[6s + i, f*T + t] = (A dY)[i, s], dY the 4x4 of dy (n, F, 4TH, 4TW) at tile t (the
    caller pads odd sizes with zeros): the first half of the adjoint of
    :func:`output_transform`, dM = (A dY) A^T; ``grad_rows`` does the second. Also db[f] +=
    sum of dY[:, f] (float64), while the values pass by. ``masked``: dY is dy where ``mask``
    (the forward's output, shape of dy) is positive, else 0 (a fused ReLU)."""
    N, F = dy.shape[0], dy.shape[1]
    T = N * TH * TW
    for n in range(N):
        for f in range(F):
            g = dy[n, f]
            m = mask[n, f] if masked else g
            total = 0.0
            for th in range(TH):
                base = (n * TH + th) * TW
                h = 4 * th
                g0 = g[h]
                g1 = g[h + 1]
                g2 = g[h + 2]
                g3 = g[h + 3]
                m0 = m[h]
                m1 = m[h + 1]
                m2 = m[h + 2]
                m3 = m[h + 3]
                for tw in range(TW):
                    t = base + tw
                    w = 4 * tw
                    # A dY, column by column: u[b] is column b of A dY (6 values)
                    u0 = _a_column(g0, g1, g2, g3, m0, m1, m2, m3, w, masked, k)
                    u1 = _a_column(g0, g1, g2, g3, m0, m1, m2, m3, w + 1, masked, k)
                    u2 = _a_column(g0, g1, g2, g3, m0, m1, m2, m3, w + 2, masked, k)
                    u3 = _a_column(g0, g1, g2, g3, m0, m1, m2, m3, w + 3, masked, k)
                    p = f * T + t
                    _put_column(Z, 0, p, u0)
                    _put_column(Z, 6, p, u1)
                    _put_column(Z, 12, p, u2)
                    _put_column(Z, 18, p, u3)
                    # row 1 of A is all ones: u[b][1] is the sum of column b of dY, and
                    # their sum the tile's, for dL/db
                    total += (u0[1] + u1[1]) + (u2[1] + u3[1])
            db[f] += total
    return Z


@njit(cache=True)
def _routed(g, at, i):
    """g if the window's maximum is at position i, else 0."""
    return g if at == i else g * 0


@njit(cache=True, nogil=True)
def _pooled_column(G, A, w, upper, lower, k, Z, row, T, off):
    """Z[row + i, off + t] = (A y)[i] for every tile t, y the column of dY that crosses
    windows w (top) and w + 2 (bottom) at positions ``upper`` and ``lower`` of each: zero
    but where a window's maximum is."""
    z0 = Z[row, off:off + T]
    z1 = Z[row + 1, off:off + T]
    z2 = Z[row + 2, off:off + T]
    z3 = Z[row + 3, off:off + T]
    z4 = Z[row + 4, off:off + T]
    z5 = Z[row + 5, off:off + T]
    for t in range(T):
        u = _a(_routed(G[w, t], A[w, t], upper), _routed(G[w, t], A[w, t], lower),
               _routed(G[w + 2, t], A[w + 2, t], upper),
               _routed(G[w + 2, t], A[w + 2, t], lower), k)
        z0[t] = u[0]
        z1[t] = u[1]
        z2[t] = u[2]
        z3[t] = u[3]
        z4[t] = u[4]
        z5[t] = u[5]


@njit(cache=True, nogil=True)
def grad_rows(Z, i, n, D, k):
    """D[j, p] = entry 6i + j of dM = (A dY) A^T for the first n columns p = f*T + t, from
    row i of A dY held in Z as ``output_grad_transform`` writes it: one flat loop, in
    vector instructions."""
    for p in range(n):
        v = _a(Z[i, p], Z[6 + i, p], Z[12 + i, p], Z[18 + i, p], k)
        D[0, p] = v[0]
        D[1, p] = v[1]
        D[2, p] = v[2]
        D[3, p] = v[3]
        D[4, p] = v[4]
        D[5, p] = v[5]


@njit(cache=True, nogil=True)
def pooled_grad_transform(dp, where, TH, TW, Z, db, k, mask, masked):
    """:func:`output_grad_transform` after a forward that ended in the fused 2x2 max-pool
    (``output_transform_pool`` with positions): dp (n, F, 2TH, 2TW) is the pooled output's gradient,
    and each tile's 4x4 dY is zero but for the maximum of each of its four windows
    (``where``), which gets its window's dp; gated by ``mask`` > 0 (the pooled output) when
    ``masked``, the fused ReLU.

    One filter at a time on all T tiles: a pass tile by tile gathers each window's gradient
    and position (8 values a tile), then A dY goes over all tiles at once, t innermost, in
    vector instructions (conv2 of the examples CNN, one core: 71-76 against 94-100
    microseconds per image for a tile-by-tile kernel, when it still wrote dM itself)."""
    N, F = dp.shape[0], dp.shape[1]
    T = N * TH * TW
    G = np.empty((4, T), dp.dtype)          # window q's gated gradient, in tile t
    A = np.empty((4, T), dp.dtype)          # ... where its maximum was (as a value of dp's
    pos = np.arange(4).astype(dp.dtype)     # dtype: int8 mixed in kept LLVM from vectorising)
    for f in range(F):
        total = 0.0
        for n in range(N):
            gp = dp[n, f]
            mp = mask[n, f] if masked else gp
            wp = where[n, f]
            for th in range(TH):
                g0 = gp[2 * th]
                g1 = gp[2 * th + 1]
                m0 = mp[2 * th]
                m1 = mp[2 * th + 1]
                w0 = wp[2 * th]
                w1 = wp[2 * th + 1]
                for tw in range(TW):
                    t = (n * TH + th) * TW + tw
                    q = 2 * tw
                    a = _gate(g0[q], m0[q], masked)
                    b = _gate(g0[q + 1], m0[q + 1], masked)
                    c = _gate(g1[q], m1[q], masked)
                    d = _gate(g1[q + 1], m1[q + 1], masked)
                    G[0, t] = a
                    G[1, t] = b
                    G[2, t] = c
                    G[3, t] = d
                    A[0, t] = w0[q]
                    A[1, t] = w0[q + 1]
                    A[2, t] = w1[q]
                    A[3, t] = w1[q + 1]
                    total += (a + b) + (c + d)
        db[f] += total
        # A dY, column by column: columns 0-1 lie in windows 0 (top) and 2 (bottom), 2-3
        # in windows 1 and 3; column s holds positions s % 2 (a window's upper row) and
        # 2 + s % 2 (its lower row)
        off = f * T
        _pooled_column(G, A, 0, pos[0], pos[2], k, Z, 0, T, off)
        _pooled_column(G, A, 0, pos[1], pos[3], k, Z, 6, T, off)
        _pooled_column(G, A, 1, pos[0], pos[2], k, Z, 12, T, off)
        _pooled_column(G, A, 1, pos[1], pos[3], k, Z, 18, T, off)
    return Z


@njit(cache=True, nogil=True)
def grad_times_bt(dV, n, R, i, k):
    """R[6i + s, p] = (dV B^T)[i, s] for the first n columns p = c*T + t, from dV's entries
    6i..6i+5 (row i of each 6x6), held in dV (6, >= n): the first half of the adjoint of
    :func:`input_transform`, one flat loop in vector instructions, made while the product
    that wrote those entries is still in cache."""
    for p in range(n):
        v = _b(dV[0, p], dV[1, p], dV[2, p], dV[3, p], dV[4, p], dV[5, p], k)
        R[6 * i, p] = v[0]
        R[6 * i + 1, p] = v[1]
        R[6 * i + 2, p] = v[2]
        R[6 * i + 3, p] = v[3]
        R[6 * i + 4, p] = v[4]
        R[6 * i + 5, p] = v[5]


@njit(cache=True, nogil=True)
def input_grad_transform(R, TH, TW, dxp, k):
    """dxp[n, c] (zeroed here) += B R_t at each tile's place, R_t = dV B^T of tile t (entry
    (i, s) at R[6i + s, c*T + t], from ``grad_times_bt``): the second half of the adjoint of
    :func:`input_transform`; neighbouring tiles overlap by two rows/columns and add up. (With
    both halves here, tile by tile, conv2 of the examples CNN took 110 us per image, one
    core.)"""
    N, C = dxp.shape[0], dxp.shape[1]
    T = N * TH * TW
    for n in range(N):
        for c in range(C):
            plane = dxp[n, c]
            plane[:, :] = 0
            for th in range(TH):
                h = 4 * th
                r0, r1, r2, r3, r4, r5 = _six_rows(plane, h)
                for tw in range(TW):
                    p = c * T + (n * TH + th) * TW + tw
                    w = 4 * tw
                    for s in range(6):      # column s of B R_t, added into the plane
                        v = _b(R[s, p], R[6 + s, p], R[12 + s, p], R[18 + s, p], R[24 + s, p],
                               R[30 + s, p], k)
                        r0[w + s] += v[0]
                        r1[w + s] += v[1]
                        r2[w + s] += v[2]
                        r3[w + s] += v[3]
                        r4[w + s] += v[4]
                        r5[w + s] += v[5]
    return dxp


@njit(cache=True, nogil=True)
def pad_planes(x, pad, HP, WP, xp):
    """xp (n, C, HP, WP) = x placed at (pad, pad), zeros around (and up to whole tiles)."""
    N, C, H, W = x.shape
    for n in range(N):
        for c in range(C):
            plane = xp[n, c]
            plane[:, :] = 0
            for h in range(H):
                src = x[n, c, h]
                dst = plane[h + pad]
                for w in range(W):
                    dst[w + pad] = src[w]
    return xp


@njit(cache=True, nogil=True)
def crop_planes(xp, pad, x):
    """x (n, C, H, W) = xp[:, :, pad:pad + H, pad:pad + W]: the adjoint of pad_planes."""
    N, C, H, W = x.shape
    for n in range(N):
        for c in range(C):
            for h in range(H):
                src = xp[n, c, h + pad]
                dst = x[n, c, h]
                for w in range(W):
                    dst[w] = src[w + pad]
    return x


def _geometry(x_shape, pad):
    N, C, H, W = x_shape
    OH, OW = H + 2 * pad - 2, W + 2 * pad - 2
    TH, TW = -(-OH // 4), -(-OW // 4)
    return OH, OW, TH, TW, 4 * TH + 2, 4 * TW + 2


def _padded(x, pad, HP, WP, name):
    """x (n, C, H, W) with ``pad`` zeros before and zeros after up to (HP, WP), in a scratch
    buffer named ``name``: here whole tiles, for conv.im2col just the padding. x itself when
    there is nothing to add (pad_planes then never compiles)."""
    N, C, H, W = x.shape
    if pad == 0 and H == HP and W == WP:
        return x
    return pad_planes(x, pad, HP, WP, scratch(name, (N, C, HP, WP), x.dtype))


def filter_transform(W):
    """U^T (36, C, F): entry (i, j) of G W[f, c] G^T at [6i + j, c, f] for every filter pair
    (f, c), computed in float64 (G holds sixths and twenty-fourths) and rounded once. Both
    products take U transposed: the forward's M^T = V^T U^T, the backward's dV = U^T dM."""
    F, C = W.shape[:2]
    # two plain matrix products (G @ W @ G.T over the (F, C) stack was 0.5 ms for conv2 of
    # the examples CNN: NumPy loops over 2048 tiny products)
    WG = W.reshape(F * C * 3, 3).astype(np.float64) @ WINOGRAD_G.T       # rows of W G^T
    WG = WG.reshape(F * C, 3, 6).transpose(1, 0, 2).reshape(3, -1)        # (3, FC*6)
    U = WINOGRAD_G @ WG                                                   # (6, FC*6)
    U = U.reshape(6, F * C, 6).transpose(0, 2, 1).reshape(36, F, C)       # entry 6i + j
    return np.ascontiguousarray(U.transpose(0, 2, 1), dtype=W.dtype)


# The backward's G^T dU G, as one product: column 6i + j, row 3a + b holds G[i, a] G[j, b],
# so (FILTER_GRAD @ dU.reshape(36, F*C))[3a + b] is entry (a, b) of every G^T dU[f, c] G.
FILTER_GRAD = np.kron(WINOGRAD_G.T, WINOGRAD_G.T)                      # (9, 36)


def _filter_grad(dU):
    """dU (36, F, C) -> G^T dU G for every (f, c), as a (9, F*C) array: a slice's share of
    dL/dW, computed by its worker thread (as the sum of 2,048 tiny products on the main
    thread, after the slices, it was 0.7 ms of the examples CNN's conv2 backward with the
    second core idle). In dU's dtype: converting each slice's dU to float64 first cost more
    than the product (conv2 of the examples CNN, one thread: 1.1 ms per step)."""
    return FILTER_GRAD.astype(dU.dtype) @ dU.reshape(36, -1)


_transformed = OrderedDict()        # (W's shape and dtype) -> [(copy of W, U^T), ...]
_transformed_lock = threading.Lock()
TRANSFORMED_KEPT = 8                # filter shapes remembered
TRANSFORMED_PER_SHAPE = 8           # filter banks of one shape: an ensemble's members share it


def transformed_filters(W):
    """filter_transform(W), remembered for the filter banks seen last: a prediction calls
    the same layers with the same weights again and again (an ensemble of five networks, five
    banks of each shape, in turn), and a training step's backward uses the forward's weights.
    A hit costs one comparison of W with the copy kept (W is 9/36 the size of U, and the
    optimizer changes it in place, so its identity proves nothing); for one image through
    the shipped CNN the transforms were half of the time, and with two banks kept per shape
    the five networks of the ensemble missed every time (10% of reading 2,000 files)."""
    key = (W.shape, W.dtype.str)
    with _transformed_lock:
        entries = _transformed.get(key, [])
        for i, (kept, U) in enumerate(entries):
            if np.array_equal(kept, W):
                entries.insert(0, entries.pop(i))   # most recently used first
                return U
    U = filter_transform(W)
    with _transformed_lock:
        entries = _transformed.setdefault(key, [])
        entries.insert(0, (W.copy(), U))
        del entries[TRANSFORMED_PER_SHAPE:]
        _transformed.move_to_end(key)
        while len(_transformed) > TRANSFORMED_KEPT:
            _transformed.popitem(last=False)
    return U


def _chunk(N, C, F, TH, TW, itemsize):
    return chunk_for(N, 36 * TH * TW * (C + F) * itemsize, CHUNK_BYTES)


def channels_last(x):
    """x's (N, H, W, C) view when x (N, C, H, W) is laid out channels last in memory (a
    transposed view of a C-contiguous NHWC array, as ``conv.conv2d_forward`` returns with
    ``channels_last``), else None."""
    if x.ndim != 4:
        return None
    xl = x.transpose(0, 2, 3, 1)
    return xl if xl.flags.c_contiguous and x.shape[1] > 1 else None


def _padded_last(xl, pad, HP, WP, name):
    """``_padded`` for channels-last xl (n, H, W, C): (n, HP, WP, C) with ``pad`` zeros before
    and zeros after, in a scratch buffer; xl itself when there is nothing to add."""
    N, H, W, C = xl.shape
    if pad == 0 and H == HP and W == WP:
        return xl
    xp = scratch(name, (N, HP, WP, C), xl.dtype)
    xp[:, :pad] = 0
    xp[:, pad + H:] = 0
    xp[:, pad:pad + H, :pad] = 0
    xp[:, pad:pad + H, pad + W:] = 0
    xp[:, pad:pad + H, pad:pad + W] = xl
    return xp


def conv2d_winograd_forward(x, W, b, pad, relu=False, pool=False, saved=None):
    F, C = W.shape[:2]
    dt = W.dtype
    xl = channels_last(x) if x.dtype == dt and saved is None else None
    x = np.ascontiguousarray(x, dtype=dt) if xl is None else x
    N = x.shape[0]
    OH, OW, TH, TW, HP, WP = _geometry(x.shape, pad)
    UT = transformed_filters(W)
    k = constants(dt, 0 if relu else -np.inf)
    b = np.ascontiguousarray(b, dtype=dt)
    if pool:
        OH, OW = OH // 2, OW // 2                  # pooled; each tile gives 2x2 of it
        even = OH == 2 * TH and OW == 2 * TW
    else:
        even = OH == 4 * TH and OW == 4 * TW
    y = np.empty((N, F, OH, OW), dtype=dt)
    side = 2 if pool else 4
    keep = pool and saved is not None    # training: where each pooled maximum was, too
    if keep:
        where = saved["wino_pool"] = np.empty((N, F, 2 * TH, 2 * TW), np.int8)

    def transform(M, s, e, out):
        if pool:
            return output_transform_pool(M, b, TH, TW, out, k, where[s:e] if keep else out, keep)
        return output_transform(M, b, TH, TW, out, k)

    def part(s, e):
        T = (e - s) * TH * TW
        # kept for the backward (under the slice it is for) in training, else scratch
        Vt = np.empty((36, T, C), dt) if saved is not None else scratch("wino_Vt", (36, T, C), dt)
        if xl is None:
            input_transform(_padded(x[s:e], pad, HP, WP, "wino_xp"), TH, TW, Vt, k)
        else:                        # (inference) an input laid out channels last
            input_transform_last(_padded_last(xl[s:e], pad, HP, WP, "wino_xl"), TH, TW, Vt, k)
        if saved is not None:
            saved[("wino_Vt", s, e)] = Vt
        Mt = np.matmul(Vt, UT, out=scratch("wino_Mt", (36, T, F), dt))     # M^T, per entry
        if even:
            transform(Mt, s, e, y[s:e])
        else:                        # odd sizes: whole tiles into scratch, then crop
            yt = transform(Mt, s, e, scratch("wino_y", (e - s, F, side * TH, side * TW), dt))
            y[s:e] = yt[:, :, :OH, :OW]

    run_chunks(part, N, _chunk(N, C, F, TH, TW, dt.itemsize))
    return y


def conv2d_winograd_backward(dout, x, W, pad, need_dx=True, relu_out=None, saved=None):
    F, C = W.shape[:2]
    dt = W.dtype
    x = np.ascontiguousarray(x, dtype=dt)
    dout = np.ascontiguousarray(dout, dtype=dt)
    N, _, H, Wd = x.shape
    OH, OW, TH, TW, HP, WP = _geometry(x.shape, pad)
    UT = transformed_filters(W) if need_dx else None
    k = constants(dt)
    dx = np.empty(x.shape, dtype=dt) if need_dx else None
    direct = pad == 0 and H == HP and Wd == WP       # dx needs no cropping
    # after a forward with the fused max-pool, dout and relu_out are the pooled ones
    where = saved.pop("wino_pool", None) if saved is not None else None
    side = 4 if where is None else 2
    even = dout.shape[2] == side * TH and dout.shape[3] == side * TW
    masked = relu_out is not None
    if masked and not even:      # odd sizes: the mask on its own pass, then padding below
        dout, masked = relu_backward(dout, relu_out), False
    mask = np.ascontiguousarray(relu_out, dtype=dt) if masked else dout

    def part(s, e):
        T = (e - s) * TH * TW
        Vt = saved.pop(("wino_Vt", s, e), None) if saved is not None else None
        if Vt is None:               # not kept (or sliced differently): recompute it
            Vt = input_transform(_padded(x[s:e], pad, HP, WP, "wino_xp"), TH, TW,
                                 scratch("wino_Vt", (36, T, C), dt), k)
        g = dout[s:e]
        if not even:                 # odd sizes: zeros past the edge, in whole tiles
            g = scratch("wino_y", (e - s, F, side * TH, side * TW), dt)
            g[...] = 0
            g[:, :, :dout.shape[2], :dout.shape[3]] = dout[s:e]
        db = np.zeros(F)
        # dM = (A dY) A^T, 36 (F, T) matrices, 1.3 MB for a slice of conv2 in the examples
        # CNN: written whole and read by both products, it went out of the L2 cache. So the
        # kernel writes A dY (24 values a tile) and dM is made and used 6 matrices at a time
        FT = F * T
        Z = row_scratch("wino_Z", 24, FT, dt)
        if where is None:
            output_grad_transform(g, TH, TW, Z, db, k, mask[s:e], masked)
        else:
            pooled_grad_transform(g, where[s:e], TH, TW, Z, db, k, mask[s:e], masked)
        D = row_scratch("wino_dM", 6, FT, dt)
        dM = D[:, :FT].reshape(6, F, T)             # entries 6i..6i+5 of dM, in turn
        dU = np.empty((36, F, C), dt)
        if need_dx:
            CT = C * T
            Dv = row_scratch("wino_dV", 6, CT, dt)
            dV = Dv[:, :CT].reshape(6, C, T)        # entries 6i..6i+5 of dV, in turn
            R = row_scratch("wino_R", 36, CT, dt)
        for i in range(6):
            rows = slice(6 * i, 6 * i + 6)
            grad_rows(Z, i, FT, D, k)
            np.matmul(dM, Vt[rows], out=dU[rows])                    # (6, F, C)
            if need_dx:
                np.matmul(UT[rows], dM, out=dV)                      # (6, C, T)
                grad_times_bt(Dv, CT, R, i, k)
        if need_dx:
            if direct:
                input_grad_transform(R, TH, TW, dx[s:e], k)
            else:
                dxp = input_grad_transform(R, TH, TW, scratch("wino_dxp", (e - s, C, HP, WP), dt),
                                           k)
                crop_planes(dxp, pad, dx[s:e])
        return _filter_grad(dU), db

    parts = run_chunks(part, N, _chunk(N, C, F, TH, TW, dt.itemsize))
    dW = np.zeros((9, F * C))        # float64; in place (a new array per slice was 0.1 ms
    for p in parts:                  # more), in slice order so the sum never depends on
        dW += p[0]                   # timing
    db = sum(p[1] for p in parts)
    return dx, dW.reshape(3, 3, F, C).transpose(2, 3, 0, 1).astype(dt), db.astype(dt)
