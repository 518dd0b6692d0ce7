"""3x3 stride-1 convolution by Winograd F(2x2, 3x3), fast: Numba tile transforms around 16
BLAS products per slice of the batch.

The math is ``conv2d_winograd_forward`` / ``conv2d_winograd_backward`` in
``tinynet/ops/reference.py``. Why: im2col spends 36 multiply-adds per 2x2 output tile per
(filter, channel); the Winograd domain needs 16, so the products, which are most of a CNN's
training time, shrink 2.25x. The transforms are additions only, and their arrays are smaller
than im2col's copy (16 values per 4 outputs, against 9 per output).

Layout: a slice of n images has T = n*TH*TW tiles, t = (image, tile row, tile column).
Per slice the kernels fill V (16, C, T) (entry ij of each input tile's B^T d B), the BLAS
computes M[ij] = U[ij] @ V[ij] as one stacked (16, F, C) @ (16, C, T) product, and the
output kernel turns M (16, F, T) into y. Backward reuses the layout: dM from dout, then
dU = dM @ V^T (F, C) and dV = U^T @ dM (C, T), each 16 products, and the adjoint of the input
transform adds dV back into the overlapping input tiles. V is recomputed in backward rather
than kept: one cheap pass over the (small) input against 16*C*T floats of memory.

Each worker thread runs one slice's whole pipeline on a 1-thread BLAS, so the transform
arrays (about ``CHUNK_BYTES``) stay in its cache between the kernels and the products.
"""

import numpy as np
from numba import njit

from ..reference import WINOGRAD_G
from .scheduler import chunk_for, run_chunks, scratch

# Bytes of V and M per slice: about two images of conv2 in the examples CNN; measured
# fastest (one or two images: 0.16 ms per image forward, eight: 0.20, sixteen: 0.26).
CHUNK_BYTES = 2 << 20


@njit(cache=True, nogil=True)
def input_transform(xp, TH, TW, V):
    """V[4i+j, c, t] = (B^T d B)[i, j] for the 4x4 tile d of image plane xp[n, c] that starts
    at (2*th, 2*tw), t = (n*TH + th)*TW + tw. xp (n, C, >= 2TH+2, >= 2TW+2)."""
    N, C = xp.shape[0], xp.shape[1]
    for n in range(N):
        for c in range(C):
            plane = xp[n, c]
            for th in range(TH):
                r0 = plane[2 * th]
                r1 = plane[2 * th + 1]
                r2 = plane[2 * th + 2]
                r3 = plane[2 * th + 3]
                base = (n * TH + th) * TW
                for tw in range(TW):
                    w = 2 * tw
                    t = base + tw
                    # B^T d: rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3), column by column
                    a0 = r0[w] - r2[w]
                    a1 = r0[w + 1] - r2[w + 1]
                    a2 = r0[w + 2] - r2[w + 2]
                    a3 = r0[w + 3] - r2[w + 3]
                    b0 = r1[w] + r2[w]
                    b1 = r1[w + 1] + r2[w + 1]
                    b2 = r1[w + 2] + r2[w + 2]
                    b3 = r1[w + 3] + r2[w + 3]
                    c0 = r2[w] - r1[w]
                    c1 = r2[w + 1] - r1[w + 1]
                    c2 = r2[w + 2] - r1[w + 2]
                    c3 = r2[w + 3] - r1[w + 3]
                    d0 = r1[w] - r3[w]
                    d1 = r1[w + 1] - r3[w + 1]
                    d2 = r1[w + 2] - r3[w + 2]
                    d3 = r1[w + 3] - r3[w + 3]
                    # ... then times B: the same combination along each row
                    V[0, c, t] = a0 - a2
                    V[1, c, t] = a1 + a2
                    V[2, c, t] = a2 - a1
                    V[3, c, t] = a1 - a3
                    V[4, c, t] = b0 - b2
                    V[5, c, t] = b1 + b2
                    V[6, c, t] = b2 - b1
                    V[7, c, t] = b1 - b3
                    V[8, c, t] = c0 - c2
                    V[9, c, t] = c1 + c2
                    V[10, c, t] = c2 - c1
                    V[11, c, t] = c1 - c3
                    V[12, c, t] = d0 - d2
                    V[13, c, t] = d1 + d2
                    V[14, c, t] = d2 - d1
                    V[15, c, t] = d1 - d3
    return V


@njit(cache=True, nogil=True)
def output_transform(M, b, TH, TW, y):
    """y[n, f, 2th + a, 2tw + e] = (A^T M[:, f, t] A)[a, e] + b[f] for each tile t of image n,
    the 16 entries of M read as a 4x4. y (n, F, 2TH, 2TW): whole tiles (the caller crops odd
    sizes), so the loop has no edge cases."""
    N, F = y.shape[0], y.shape[1]
    for n in range(N):
        for f in range(F):
            bias = b[f]
            out = y[n, f]
            for th in range(TH):
                base = (n * TH + th) * TW
                h = 2 * th
                for tw in range(TW):
                    t = base + tw
                    # A^T m: rows (m0 + m1 + m2, m1 - m2 - m3), column by column
                    s00 = M[0, f, t] + M[4, f, t] + M[8, f, t]
                    s01 = M[1, f, t] + M[5, f, t] + M[9, f, t]
                    s02 = M[2, f, t] + M[6, f, t] + M[10, f, t]
                    s03 = M[3, f, t] + M[7, f, t] + M[11, f, t]
                    s10 = M[4, f, t] - M[8, f, t] - M[12, f, t]
                    s11 = M[5, f, t] - M[9, f, t] - M[13, f, t]
                    s12 = M[6, f, t] - M[10, f, t] - M[14, f, t]
                    s13 = M[7, f, t] - M[11, f, t] - M[15, f, t]
                    w = 2 * tw
                    out[h, w] = s00 + s01 + s02 + bias
                    out[h, w + 1] = s01 - s02 - s03 + bias
                    out[h + 1, w] = s10 + s11 + s12 + bias
                    out[h + 1, w + 1] = s11 - s12 - s13 + bias
    return y


@njit(cache=True, nogil=True)
def output_grad_transform(dy, TH, TW, dM, db):
    """dM[:, f, t] = A dY A^T (16 entries) from dY, the 2x2 of dy (n, F, 2TH, 2TW) at tile t
    (the caller pads odd sizes with zeros): the adjoint of :func:`output_transform`. Also
    db[f] += sum of dy[:, f] (float64), while the values pass by."""
    N, F = dy.shape[0], dy.shape[1]
    for n in range(N):
        for f in range(F):
            g = dy[n, f]
            total = 0.0
            for th in range(TH):
                base = (n * TH + th) * TW
                h = 2 * th
                for tw in range(TW):
                    t = base + tw
                    w = 2 * tw
                    y00 = g[h, w]
                    y01 = g[h, w + 1]
                    y10 = g[h + 1, w]
                    y11 = g[h + 1, w + 1]
                    # A dY: rows (y0, y0 + y1, y0 - y1, -y1); then times A^T, along each row
                    u0 = y00
                    u1 = y01
                    p0 = y00 + y10
                    p1 = y01 + y11
                    q0 = y00 - y10
                    q1 = y01 - y11
                    dM[0, f, t] = u0
                    dM[1, f, t] = u0 + u1
                    dM[2, f, t] = u0 - u1
                    dM[3, f, t] = -u1
                    dM[4, f, t] = p0
                    dM[5, f, t] = p0 + p1
                    dM[6, f, t] = p0 - p1
                    dM[7, f, t] = -p1
                    dM[8, f, t] = q0
                    dM[9, f, t] = q0 + q1
                    dM[10, f, t] = q0 - q1
                    dM[11, f, t] = -q1
                    dM[12, f, t] = -y10
                    dM[13, f, t] = -y10 - y11
                    dM[14, f, t] = y11 - y10
                    dM[15, f, t] = y11
                    total += (y00 + y01) + (y10 + y11)
            db[f] += total
    return dM


@njit(cache=True, nogil=True)
def input_grad_transform(dV, TH, TW, dxp):
    """dxp[n, c] (zeroed here) += B dV[:, c, t] B^T at each tile's place: the adjoint of
    :func:`input_transform`; neighbouring tiles overlap by two rows/columns and add up."""
    N, C = dxp.shape[0], dxp.shape[1]
    for n in range(N):
        for c in range(C):
            plane = dxp[n, c]
            plane[:, :] = 0
            for th in range(TH):
                base = (n * TH + th) * TW
                r0 = plane[2 * th]
                r1 = plane[2 * th + 1]
                r2 = plane[2 * th + 2]
                r3 = plane[2 * th + 3]
                for tw in range(TW):
                    t = base + tw
                    # B^T's columns: e0 = v0, e1 = v1 - v2 + v3, e2 = -v0 + v1 + v2, e3 = -v3,
                    # first down each column of the 4x4 dV ...
                    e00 = dV[0, c, t]
                    e01 = dV[1, c, t]
                    e02 = dV[2, c, t]
                    e03 = dV[3, c, t]
                    e10 = dV[4, c, t] - dV[8, c, t] + dV[12, c, t]
                    e11 = dV[5, c, t] - dV[9, c, t] + dV[13, c, t]
                    e12 = dV[6, c, t] - dV[10, c, t] + dV[14, c, t]
                    e13 = dV[7, c, t] - dV[11, c, t] + dV[15, c, t]
                    e20 = dV[4, c, t] + dV[8, c, t] - dV[0, c, t]
                    e21 = dV[5, c, t] + dV[9, c, t] - dV[1, c, t]
                    e22 = dV[6, c, t] + dV[10, c, t] - dV[2, c, t]
                    e23 = dV[7, c, t] + dV[11, c, t] - dV[3, c, t]
                    e30 = -dV[12, c, t]
                    e31 = -dV[13, c, t]
                    e32 = -dV[14, c, t]
                    e33 = -dV[15, c, t]
                    # ... then along each row, added into the plane
                    w = 2 * tw
                    r0[w] += e00
                    r0[w + 1] += e01 - e02 + e03
                    r0[w + 2] += e02 + e01 - e00
                    r0[w + 3] -= e03
                    r1[w] += e10
                    r1[w + 1] += e11 - e12 + e13
                    r1[w + 2] += e12 + e11 - e10
                    r1[w + 3] -= e13
                    r2[w] += e20
                    r2[w + 1] += e21 - e22 + e23
                    r2[w + 2] += e22 + e21 - e20
                    r2[w + 3] -= e23
                    r3[w] += e30
                    r3[w + 1] += e31 - e32 + e33
                    r3[w + 2] += e32 + e31 - e30
                    r3[w + 3] -= e33
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
    TH, TW = -(-OH // 2), -(-OW // 2)
    return OH, OW, TH, TW, 2 * TH + 2, 2 * TW + 2


def _padded(x, pad, HP, WP, name):
    """x itself when it already covers whole tiles, else a zero-padded copy (scratch)."""
    N, C, H, W = x.shape
    if pad == 0 and H == HP and W == WP:
        return x
    return pad_planes(x, pad, HP, WP, scratch(name, (N, C, HP, WP), x.dtype))


def filter_transform(W):
    """U (16, F, C): entry (i, j) of G W[f, c] G^T for every filter pair (f, c)."""
    G = WINOGRAD_G.astype(W.dtype)
    F, C = W.shape[:2]
    U = (G @ W @ G.T).reshape(F, C, 16)
    return np.ascontiguousarray(U.transpose(2, 0, 1))


def _chunk(N, C, F, TH, TW, itemsize):
    return chunk_for(N, 16 * TH * TW * (C + F) * itemsize, CHUNK_BYTES)


def conv2d_winograd_forward(x, W, b, pad):
    F, C = W.shape[:2]
    dt = W.dtype
    x = np.ascontiguousarray(x, dtype=dt)
    N = x.shape[0]
    OH, OW, TH, TW, HP, WP = _geometry(x.shape, pad)
    U = filter_transform(W)
    b = np.ascontiguousarray(b, dtype=dt)
    y = np.empty((N, F, OH, OW), dtype=dt)
    even = OH == 2 * TH and OW == 2 * TW

    def part(s, e):
        T = (e - s) * TH * TW
        V = input_transform(_padded(x[s:e], pad, HP, WP, "wino_xp"), TH, TW,
                            scratch("wino_V", (16, C, T), dt, spread=True))
        M = np.matmul(U, V, out=scratch("wino_M", (16, F, T), dt, spread=True))
        if even:
            output_transform(M, b, TH, TW, y[s:e])
        else:                        # odd sizes: whole tiles into scratch, then crop
            yt = output_transform(M, b, TH, TW, scratch("wino_y", (e - s, F, 2 * TH, 2 * TW), dt))
            y[s:e] = yt[:, :, :OH, :OW]

    run_chunks(part, N, _chunk(N, C, F, TH, TW, dt.itemsize))
    return y


def conv2d_winograd_backward(dout, x, W, pad, need_dx=True):
    F, C = W.shape[:2]
    dt = W.dtype
    x = np.ascontiguousarray(x, dtype=dt)
    dout = np.ascontiguousarray(dout, dtype=dt)
    N, _, H, Wd = x.shape
    OH, OW, TH, TW, HP, WP = _geometry(x.shape, pad)
    UT = np.ascontiguousarray(filter_transform(W).transpose(0, 2, 1)) if need_dx else None
    dx = np.empty(x.shape, dtype=dt) if need_dx else None
    direct = pad == 0 and H == HP and Wd == WP       # dx needs no cropping
    even = OH == 2 * TH and OW == 2 * TW

    def part(s, e):
        T = (e - s) * TH * TW
        V = input_transform(_padded(x[s:e], pad, HP, WP, "wino_xp"), TH, TW,
                            scratch("wino_V", (16, C, T), dt, spread=True))
        g = dout[s:e]
        if not even:                 # odd sizes: zeros past the edge, in whole tiles
            g = scratch("wino_y", (e - s, F, 2 * TH, 2 * TW), dt)
            g[...] = 0
            g[:, :, :OH, :OW] = dout[s:e]
        db = np.zeros(F)
        dM = output_grad_transform(g, TH, TW, scratch("wino_M", (16, F, T), dt, spread=True), db)
        dU = np.matmul(dM, V.transpose(0, 2, 1))                     # (16, F, C)
        if need_dx:
            dV = np.matmul(UT, dM, out=V)                            # V is no longer needed
            if direct:
                input_grad_transform(dV, TH, TW, dx[s:e])
            else:
                dxp = input_grad_transform(dV, TH, TW, scratch("wino_dxp", (e - s, C, HP, WP), dt))
                crop_planes(dxp, pad, dx[s:e])
        return dU, db

    parts = run_chunks(part, N, _chunk(N, C, F, TH, TW, dt.itemsize))
    dU, db = parts[0]
    for p in parts[1:]:              # in slice order, so the sum never depends on timing
        dU = dU + p[0]
        db = db + p[1]
    G = WINOGRAD_G.astype(dt)
    dU = dU.transpose(1, 2, 0).reshape(F, C, 4, 4)
    return dx, (G.T @ dU @ G).astype(dt), db.astype(dt)
