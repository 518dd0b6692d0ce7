"""Dropout regularisation."""

import numpy as np

from ..init import get_rng
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
        keep = 1.0 - self.p
        # One float32 draw per entry; the mask already holds the 1/keep factor.
        self.scale = (self.rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype)
        self.scale *= x.dtype.type(1.0 / keep)
        return x * self.scale

    def backward(self, dout):
        if self.scale is None:
            return dout
        return dout * self.scale

    def config(self):
        return {"p": self.p}
