"""2-D convolution layer (NCHW), computed as im2col + one matrix product per image."""

import numpy as np

from ..init import get_rng, he_normal
from ..kernels.conv import col2im, conv_output_size, im2col
from ..kernels.parallel import chunk_for, run_chunks, scratch
from .base import Layer

# Inference processes at most this many images at a time, so the im2col buffer stays
# small even for a 10,000-image batch (conv2 of the MNIST CNN: 64 images -> 42 MB).
INFERENCE_CHUNK = 64
# Training and inference work on slices of about this many bytes of ``cols`` at a time,
# one slice per worker thread (see ``tinynet/kernels/parallel.py``), so that the im2col
# copy is still in the core's cache when the matrix product reads it.
CHUNK_BYTES = 3 << 20


def _pair(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


class Conv2D(Layer):
    """Convolution of an image batch with F learned filters.

    Shapes::

        x     (N, C, H, W)         input batch, C = in_channels
        W     (F, C, kh, kw)       F = out_channels filters, each seeing all C channels
        b     (F,)                 one bias per filter
        y     (N, F, OH, OW)       OH = (H + 2*padding - kh) // stride + 1, same for OW

    Forward (xp is x with ``padding`` zeros around each plane)::

        y[n, f, oh, ow] = b[f] + sum_{c, i, j} W[f, c, i, j] * xp[n, c, oh*s + i, ow*s + j]

    How it is computed: im2col (see ``tinynet/kernels/conv.py``) copies, for image n,
    every input value seen by filter tap k = (c, i, j) at output position p = (oh, ow)
    into ``cols[n, k, p]``, a (K, P) matrix with K = C*kh*kw and P = OH*OW. Then with the
    filters flattened to Wm = W.reshape(F, K)::

        y[n] = Wm @ cols[n] + b[:, None]            (F, K) @ (K, P) -> (F, P)

    which is already NCHW. Backward, given G = dL/dy reshaped to (N, F, P)::

        dL/db  = sum_{n, p} G[n, :, p]                                  (F,)
        dL/dWm = sum_n G[n] @ cols[n]^T        (F, P) @ (P, K) -> (F, K), reshaped (F, C, kh, kw)
        dcols[n] = Wm^T @ G[n]                 (K, F) @ (F, P) -> (K, P)
        dL/dx  = col2im(dcols)                 each entry added back to the pixel it
                                               was copied from                 (N, C, H, W)

    These are the Dense layer's three formulas (dW = x^T G, db = sum G, dx = G W^T) applied
    to each image's ``cols`` matrix, plus col2im, the adjoint of the copy.

    Training keeps the input x (not ``cols``, which is C*kh*kw times bigger): backward
    recomputes each slice's im2col copy, which is cheaper than reading a stored copy back
    from memory (measured: 10.5 + 21 ms instead of 12.6 + 24 ms forward + backward for
    conv2 of the examples/mnist CNN at batch 64 on 2 cores). When ``needs_input_grad`` is
    false (first layer of a network) the dcols product and col2im are skipped.
    Weights: He normal, std = sqrt(2 / (C*kh*kw)).

    Threads: the batch is cut into slices of a few images, and each of the 2 worker
    threads (``tinynet/kernels/parallel.py``) runs a slice's whole pipeline, im2col then
    its products on a 1-thread BLAS (then, backward, dcols and col2im into its own rows of
    dL/dx, while its share of dL/dW and dL/db is summed afterwards in slice order), so the
    copy is still in cache when the product reads it and no core waits on a spinning one.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None):
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kh, self.kw = _pair(kernel_size, "kernel_size")
        self.kernel_size = kernel_size if isinstance(kernel_size, int) else [self.kh, self.kw]
        self.stride = int(stride)
        self.padding = int(padding)
        if min(self.in_channels, self.out_channels, self.kh, self.kw, self.stride) < 1:
            raise ValueError("channels, kernel_size and stride must be positive")
        if self.padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        fan_in = self.in_channels * self.kh * self.kw
        shape = (self.out_channels, self.in_channels, self.kh, self.kw)
        self.params = {"W": he_normal(get_rng(rng), shape, fan_in=fan_in),
                       "b": np.zeros(self.out_channels, dtype=np.float32)}
        self._x = None          # the last training input, kept for backward

    def output_shape(self, h, w):
        """(OH, OW) for an input plane of h x w."""
        return (conv_output_size(h, self.kh, self.stride, self.padding),
                conv_output_size(w, self.kw, self.stride, self.padding))

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2D expects input of shape (N, {self.in_channels}, H, W), "
                             f"got {x.shape}")
        oh, ow = self.output_shape(x.shape[2], x.shape[3])
        if oh < 1 or ow < 1:
            raise ValueError(f"input plane {x.shape[2:]} is smaller than the kernel "
                             f"({self.kh}, {self.kw}) with padding {self.padding}")
        return oh, ow

    def forward(self, x, training=False):
        W, b = self.params["W"], self.params["b"]
        x = np.ascontiguousarray(x, dtype=W.dtype)
        OH, OW = self._check_input(x)
        N = x.shape[0]
        F = self.out_channels
        K = self.in_channels * self.kh * self.kw
        P = OH * OW
        Wm = W.reshape(F, K)
        bias = b[:, None]
        k = (self.kh, self.kw, self.stride, self.padding)
        y = np.empty((N, F, P), dtype=W.dtype)
        if training:
            self._x = x             # backward recomputes the im2col copy from x

        def part(s, e):
            cols = im2col(x[s:e], *k, scratch("conv_cols", (e - s, K, P), W.dtype))
            np.matmul(Wm, cols, out=y[s:e])            # one BLAS call per image
            y[s:e] += bias

        itemsize = W.dtype.itemsize
        chunk = chunk_for(N, K * P * itemsize, CHUNK_BYTES)
        if not training:
            chunk = min(chunk, INFERENCE_CHUNK)
        run_chunks(part, N, chunk)
        return y.reshape(N, F, OH, OW)

    def backward(self, dout):
        W, x = self.params["W"], self._x
        N, F = dout.shape[0], self.out_channels
        K = self.in_channels * self.kh * self.kw
        G = np.ascontiguousarray(dout, dtype=W.dtype).reshape(N, F, -1)   # (N, F, P)
        P = G.shape[2]
        Wm = W.reshape(F, K)
        dx = np.empty(x.shape, dtype=W.dtype) if self.needs_input_grad else None
        k = (self.kh, self.kw, self.stride, self.padding)

        def part(s, e):
            cols = im2col(x[s:e], *k, scratch("conv_cols", (e - s, K, P), W.dtype))
            # this slice's share of dL/dWm = sum_n G[n] @ cols[n]^T (the transpose is a
            # view: BLAS reads it in place) and of dL/db = sum_{n, p} G[n, :, p]
            dW = np.zeros((F, K), dtype=W.dtype)
            tmp = scratch("conv_dW", (F, K), W.dtype)
            for n in range(e - s):
                np.matmul(G[s + n], cols[n].T, out=tmp)
                dW += tmp
            db = G[s:e].sum(axis=(0, 2))
            if dx is not None:
                dcols = scratch("conv_dcols", (e - s, K, P), W.dtype)
                np.matmul(Wm.T, G[s:e], out=dcols)            # (n, K, P)
                col2im(dcols, *k, dx[s:e])
            return dW, db

        chunk = chunk_for(N, K * P * W.dtype.itemsize, CHUNK_BYTES)
        parts = run_chunks(part, N, chunk)
        dW, db = parts[0]
        for p in parts[1:]:
            dW = dW + p[0]
            db = db + p[1]
        self.grads["W"] = dW.reshape(W.shape)
        self.grads["b"] = db
        return dx

    @property
    def _cols(self):
        """im2col of the last training batch, (N, K, P), rebuilt from the kept input (the
        layer itself recomputes it slice by slice in backward rather than storing it)."""
        K = self.in_channels * self.kh * self.kw
        OH, OW = self.output_shape(self._x.shape[2], self._x.shape[3])
        cols = np.empty((self._x.shape[0], K, OH * OW), dtype=self._x.dtype)
        return im2col(self._x, self.kh, self.kw, self.stride, self.padding, cols)

    def astype(self, dtype):
        self._x = None
        return super().astype(dtype)

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding}
