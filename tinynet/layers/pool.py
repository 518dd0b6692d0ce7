"""Max pooling (NCHW)."""

import numpy as np

from ..kernels.parallel import chunk_for, run_chunks
from ..kernels.pool import maxpool_backward, maxpool_forward, pool_output_size
from .base import Layer

CHUNK_BYTES = 1 << 20   # bytes of input per slice handed to a worker thread


class MaxPool2D(Layer):
    """Keep the largest value of each ph x pw window (stride defaults to the window size).

    Shapes::

        x   (N, C, H, W)
        y   (N, C, OH, OW)      OH = (H - ph) // stride + 1, same for OW
                                (a partial window at the border is dropped)

    Forward::

        y[n, c, oh, ow] = max_{i < ph, j < pw} x[n, c, oh*stride + i, ow*stride + j]

    The position of each maximum (the "argmax") is remembered during training.

    Backward: y depends on one input per window, with slope 1, so dL/dy flows to that
    input only and every other input gets 0::

        dL/dx[n, c, h, w] = sum of dL/dy[n, c, oh, ow] over the windows whose max is at (h, w)

    (a sum only matters when windows overlap). No parameters. Kernels:
    ``tinynet/kernels/pool.py``; the batch is split over the worker threads
    (``tinynet/kernels/parallel.py``).
    """

    def __init__(self, pool_size=2, stride=None):
        super().__init__()
        if isinstance(pool_size, (tuple, list)):
            self.ph, self.pw = int(pool_size[0]), int(pool_size[1])
            self.pool_size = [self.ph, self.pw]
        else:
            self.ph = self.pw = self.pool_size = int(pool_size)
        self.stride = self.ph if stride is None else int(stride)
        if min(self.ph, self.pw, self.stride) < 1:
            raise ValueError("pool_size and stride must be positive")
        self._arg = None
        self._x_shape = None

    def forward(self, x, training=False):
        if x.ndim != 4:
            raise ValueError(f"MaxPool2D expects input of shape (N, C, H, W), got {x.shape}")
        x = np.ascontiguousarray(x)
        N, C, H, W = x.shape
        OH = pool_output_size(H, self.ph, self.stride)
        OW = pool_output_size(W, self.pw, self.stride)
        if OH < 1 or OW < 1:
            raise ValueError(f"input plane {(H, W)} is smaller than the pool window")
        y = np.empty((N, C, OH, OW), dtype=x.dtype)
        arg = np.empty((N, C, OH, OW), dtype=np.int32)
        run_chunks(lambda s, e: maxpool_forward(x[s:e], self.ph, self.pw, self.stride,
                                                y[s:e], arg[s:e]),
                   N, chunk_for(N, C * H * W * x.dtype.itemsize, CHUNK_BYTES))
        if training:
            self._arg, self._x_shape = arg, x.shape
        return y

    def backward(self, dout):
        if not self.needs_input_grad:
            return None
        dout = np.ascontiguousarray(dout)
        dx = np.empty(self._x_shape, dtype=dout.dtype)
        N, C, H, W = dx.shape
        run_chunks(lambda s, e: maxpool_backward(dout[s:e], self._arg[s:e], dx[s:e]),
                   N, chunk_for(N, C * H * W * dx.dtype.itemsize, CHUNK_BYTES))
        return dx

    def config(self):
        return {"pool_size": self.pool_size, "stride": self.stride}
