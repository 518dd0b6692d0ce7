"""Dropout regularisation."""

import numpy as np

from ..init import get_rng
from ..kernels.elementwise import dropout_forward, multiply
from ..kernels.parallel import map_flat
from .base import Layer


class Dropout(Layer):
    """Training: y = x * m / (1 - p), with m[i] ~ Bernoulli(1 - p) drawn fresh each batch.
    Inference: y = x.

    Dividing by (1 - p) ("inverted dropout") keeps E[y] = x, so nothing needs rescaling at
    inference. Backward: dL/dx = dL/dy * m / (1 - p), the same mask as forward.
    Any shape in, same shape out.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = get_rng(rng)

    def forward(self, x, training=False):
        if not training or self.p == 0:
            self.scale = None
            return x
        x = np.ascontiguousarray(x)
        keep = 1.0 - self.p
        # One float32 draw per entry from the layer's Generator; a kernel then turns the
        # draws into the mask m = [u < keep] / keep (in place when x is float32) and
        # multiplies, in one pass.
        u = self.rng.random(x.shape, dtype=np.float32)
        m = u if x.dtype == np.float32 else np.empty_like(x)
        y = np.empty_like(x)
        map_flat(dropout_forward, x.size, x.reshape(-1), u.reshape(-1), np.float32(keep),
                 x.dtype.type(1.0 / keep), m.reshape(-1), y.reshape(-1))
        self.scale = m
        return y

    def backward(self, dout):
        if self.scale is None:
            return dout
        dout = np.ascontiguousarray(dout)
        dx = np.empty_like(dout)
        map_flat(multiply, dout.size, dout.reshape(-1), self.scale.reshape(-1), dx.reshape(-1))
        return dx

    def config(self):
        return {"p": self.p}
