"""Dense layer products, fast: plain BLAS calls, split over the worker threads when large.

The math is ``dense_forward`` / ``dense_backward`` in ``tinynet/ops/reference.py``. Small
products (the MLP's 32x784 @ 784x128) run as one call on a 1-thread BLAS: waking a second
thread costs more than the work it would take over. Large ones (the CNN's 9216 -> 128 layer)
are cut into row blocks, one ordinary BLAS call per worker.
"""

import numpy as np

from .scheduler import chunks, run_chunks, single_blas, workers

# Products smaller than this many multiply-adds run as one BLAS call.
SPLIT_MACS = 1 << 22


def _split(n, d_in, d_out):
    return workers() > 1 and n * d_in * d_out >= SPLIT_MACS


def dense_forward(x, W, b):
    if not _split(x.shape[0], *W.shape):
        with single_blas():
            return x @ W + b
    y = np.empty((x.shape[0], W.shape[1]), dtype=np.result_type(x, W))

    def rows(s, e):                      # y[s:e] = x[s:e] W + b
        np.matmul(x[s:e], W, out=y[s:e])
        y[s:e] += b

    run_chunks(rows, x.shape[0], -(-x.shape[0] // workers()))
    return y


def dense_backward(dout, x, W, need_dx=True):
    db = dout.sum(axis=0)
    if not _split(x.shape[0], *W.shape):
        with single_blas():
            return (dout @ W.T if need_dx else None), x.T @ dout, db
    # dW by blocks of rows (input features), dx by blocks of rows (images): worker i does
    # dW block i and dx block i (there are never more image blocks than feature blocks).
    dW = np.empty(W.shape, dtype=np.result_type(x, dout))
    dx = np.empty(x.shape, dtype=np.result_type(dout, W)) if need_dx else None
    cols = chunks(W.shape[0], -(-W.shape[0] // workers()))
    rows = chunks(x.shape[0], -(-x.shape[0] // len(cols)))

    def part(i, _):
        s, e = cols[i]
        np.matmul(x[:, s:e].T, dout, out=dW[s:e])
        if dx is not None and i < len(rows):
            r0, r1 = rows[i]
            np.matmul(dout[r0:r1], W.T, out=dx[r0:r1])

    run_chunks(part, len(cols), 1)
    return dx, dW, db
