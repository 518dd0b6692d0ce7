"""Fully connected (dense, linear) layer."""

import numpy as np

from .. import ops
from ..init import get_rng, glorot_uniform, he_normal
from .base import Layer


class Dense(Layer):
    """y = x W + b

    Shapes: x (N, D_in), W (D_in, D_out), b (D_out,), y (N, D_out).

    Backward, given G = dL/dy of shape (N, D_out):

        dL/dW = x^T G          (D_in, D_out)   each weight W[i, j] links input i to output j,
                                               so its gradient sums x[n, i] * G[n, j] over the batch
        dL/db = sum_n G[n, :]  (D_out,)
        dL/dx = G W^T          (N, D_in)       each input feeds every output through W

    Computed by ``ops.dense_forward`` / ``ops.dense_backward``.
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

    def forward(self, x, training=False):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Dense expects input of shape (N, {self.in_features}), got {x.shape}"
            )
        if training:
            self.cache = x
        return ops.dense_forward(x, self.params["W"], self.params["b"])

    def backward(self, dout):
        x = self.cache
        dx, self.grads["W"], self.grads["b"] = ops.dense_backward(
            dout, x, self.params["W"], self.needs_input_grad)
        return dx

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "init": self.init}
