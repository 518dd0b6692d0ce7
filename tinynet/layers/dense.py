"""Fully connected (dense, linear) layer."""

import numpy as np

from .. import threads
from ..init import get_rng, glorot_uniform, he_normal
from ..kernels.parallel import chunks, run_chunks, workers
from .base import Layer

# Products smaller than this many multiply-adds run as one BLAS call.
SPLIT_MACS = 1 << 22


class Dense(Layer):
    """y = x W + b

    Shapes: x (N, D_in), W (D_in, D_out), b (D_out,), y (N, D_out).

    Backward, given G = dL/dy of shape (N, D_out):

        dL/dW = x^T G          (D_in, D_out)   each weight W[i, j] links input i to output j,
                                               so its gradient sums x[n, i] * G[n, j] over the batch
        dL/db = sum_n G[n, :]  (D_out,)
        dL/dx = G W^T          (N, D_in)       each input feeds every output through W

    ``init="he"`` (default, for a following ReLU) or ``"glorot"`` (for a linear output).
    """

    def __init__(self, in_features, out_features, init="he", rng=None):
        super().__init__()
        if init not in ("he", "glorot"):
            raise ValueError(f"init must be 'he' or 'glorot', not {init!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.init = init
        rng = get_rng(rng)
        shape = (self.in_features, self.out_features)
        if init == "he":
            W = he_normal(rng, shape, fan_in=self.in_features)
        else:
            W = glorot_uniform(rng, shape, self.in_features, self.out_features)
        self.params = {"W": W, "b": np.zeros(self.out_features, dtype=np.float32)}
        self.x = None

    def forward(self, x, training=False):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Dense expects input of shape (N, {self.in_features}), got {x.shape}"
            )
        W, b = self.params["W"], self.params["b"]
        if training:
            self.x = x
        if not self._split(x.shape[0]):
            with threads.blas_threads(1 if workers() > 1 else None):
                return x @ W + b
        y = np.empty((x.shape[0], self.out_features), dtype=np.result_type(x, W))

        def rows(s, e):                      # y[s:e] = x[s:e] W + b
            np.matmul(x[s:e], W, out=y[s:e])
            y[s:e] += b

        run_chunks(rows, x.shape[0], -(-x.shape[0] // workers()))
        return y

    def backward(self, dout):
        x, W = self.x, self.params["W"]
        self.grads["b"] = dout.sum(axis=0)
        if not self._split(x.shape[0]):
            with threads.blas_threads(1 if workers() > 1 else None):
                self.grads["W"] = x.T @ dout
                return dout @ W.T if self.needs_input_grad else None
        # Large layers: the same products, split over the worker threads. dW by rows
        # (input features), dx by rows (images); every slice is an ordinary BLAS call.
        dW = np.empty(W.shape, dtype=np.result_type(x, dout))
        dx = (np.empty(x.shape, dtype=np.result_type(dout, W))
              if self.needs_input_grad else None)
        pieces = workers()
        cols = chunks(self.in_features, -(-self.in_features // pieces))
        rows = chunks(x.shape[0], -(-x.shape[0] // len(cols)))

        def part(i, _):
            s, e = cols[i]
            np.matmul(x[:, s:e].T, dout, out=dW[s:e])          # dW rows s:e
            if dx is not None and i < len(rows):
                r0, r1 = rows[i]
                np.matmul(dout[r0:r1], W.T, out=dx[r0:r1])     # dx rows r0:r1
            if dx is not None and i == len(cols) - 1:
                for r0, r1 in rows[len(cols):]:
                    np.matmul(dout[r0:r1], W.T, out=dx[r0:r1])

        run_chunks(part, len(cols), 1)
        self.grads["W"] = dW
        return dx

    def _split(self, n):
        """Split the products over threads only when they are big enough to pay for it."""
        return workers() > 1 and n * self.in_features * self.out_features >= SPLIT_MACS

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "init": self.init}
