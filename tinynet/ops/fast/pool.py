"""Max pooling, fast: Numba kernels, forward (with argmax) and backward.

Notation (NCHW)::

    x     (N, C, H, W)
    out   (N, C, OH, OW)     OH = (H - ph) // stride + 1, same for OW (windows that would
                             stick out past the border are dropped, as in PyTorch's default)

Forward: each output is the largest value of its ph x pw window,

    out[n, c, oh, ow] = max_{i < ph, j < pw} x[n, c, oh*stride + i, ow*stride + j]

and we remember *where* that maximum was, as a flat index into the H x W plane:

    arg[n, c, oh, ow] = ih * W + iw      (int32; ties go to the first in row-major order)

Backward: max is a switch, so its gradient routes dL/dout to the winning input and gives
zero to the others. With overlapping windows (stride < pool size) one input can win
several windows, so the gradients are added:

    dx[n, c].flat[arg[n, c, oh, ow]] += dout[n, c, oh, ow]

The readable version is ``maxpool_forward`` / ``maxpool_backward`` in
``tinynet/ops/reference.py``. The kernels are serial: the loops are memory-bound and short,
and the ops below split the batch over the scheduler's worker threads.
"""

import numpy as np
from numba import njit

from ..reference import pool_output_size
from .scheduler import chunk_for, run_chunks

CHUNK_BYTES = 1 << 20   # bytes of input per slice handed to a worker thread



@njit(cache=True, nogil=True)
def larger(v, at, best, where):
    """(v, at) if v > best else (best, where): one step of a window's running maximum and
    its position, ties kept by the earlier one. Selects, not jumps: on random data a jump is
    mispredicted half the time, which made the generic loop ~3x slower."""
    take = v > best
    return (v if take else best), (at if take else where)


@njit(cache=True, nogil=True)
def _maxpool2x2_forward(x, out, arg):
    """The common 2x2, stride-2 case of :func:`maxpool_forward_kernel`, branch-free."""
    N, C, H, W = x.shape
    OH = out.shape[2]
    OW = out.shape[3]
    for n in range(N):
        for c in range(C):
            plane = x[n, c]
            for oh in range(OH):
                r0 = plane[2 * oh]
                r1 = plane[2 * oh + 1]
                orow = out[n, c, oh]
                arow = arg[n, c, oh]
                top = 2 * oh * W
                for ow in range(OW):
                    w = 2 * ow
                    best, where = r0[w], top + w
                    best, where = larger(r0[w + 1], top + w + 1, best, where)
                    best, where = larger(r1[w], top + W + w, best, where)
                    best, where = larger(r1[w + 1], top + W + w + 1, best, where)
                    orow[ow] = best
                    arow[ow] = where
    return out


@njit(cache=True, nogil=True)
def maxpool_forward_kernel(x, ph, pw, stride, out, arg):
    """Fill ``out`` (N, C, OH, OW) with window maxima and ``arg`` (same shape, int32)
    with their flat positions in the input plane; returns ``out``."""
    N, C, H, W = x.shape
    OH = out.shape[2]
    OW = out.shape[3]
    for n in range(N):
        for c in range(C):
            plane = x[n, c]
            for oh in range(OH):
                orow = out[n, c, oh]
                arow = arg[n, c, oh]
                h0 = oh * stride
                for ow in range(OW):
                    w0 = ow * stride
                    best = plane[h0, w0]
                    where = h0 * W + w0
                    for i in range(ph):
                        for j in range(pw):
                            v = plane[h0 + i, w0 + j]
                            if v > best:
                                best = v
                                where = (h0 + i) * W + w0 + j
                    orow[ow] = best
                    arow[ow] = where
    return out


@njit(cache=True, nogil=True)
def maxpool_backward_kernel(dout, arg, dx):
    """Route ``dout`` (N, C, OH, OW) to the argmax positions of ``dx`` (N, C, H, W),
    which is overwritten; returns ``dx``."""
    N, C, H, W = dx.shape
    OH = dout.shape[2]
    OW = dout.shape[3]
    for n in range(N):
        for c in range(C):
            plane = dx[n, c].reshape(H * W)
            plane[:] = 0
            for oh in range(OH):
                drow = dout[n, c, oh]
                arow = arg[n, c, oh]
                for ow in range(OW):
                    plane[arow[ow]] += drow[ow]
    return dx


def maxpool_forward(x, ph, pw, stride, need_arg=True):
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW = pool_output_size(H, ph, stride), pool_output_size(W, pw, stride)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    arg = np.empty((N, C, OH, OW), dtype=np.int32)
    if ph == 2 and pw == 2 and stride == 2:     # (its own kernel: only it compiles)
        def part(s, e):
            _maxpool2x2_forward(x[s:e], y[s:e], arg[s:e])
    else:
        def part(s, e):
            maxpool_forward_kernel(x[s:e], ph, pw, stride, y[s:e], arg[s:e])
    run_chunks(part, N, chunk_for(N, C * H * W * x.dtype.itemsize, CHUNK_BYTES))
    return y, (arg if need_arg else None)     # the kernel finds it in the same pass anyway


def maxpool_backward(dout, arg, x_shape):
    dout = np.ascontiguousarray(dout)
    dx = np.empty(x_shape, dtype=dout.dtype)
    N, C, H, W = x_shape
    run_chunks(lambda s, e: maxpool_backward_kernel(dout[s:e], arg[s:e], dx[s:e]),
               N, chunk_for(N, C * H * W * dx.dtype.itemsize, CHUNK_BYTES))
    return dx
