"""Dropout regularisation."""

from .. import ops
from ..init import get_rng
from .base import Layer


class Dropout(Layer):
    """Training: y = x * m / (1 - p), with m[i] ~ Bernoulli(1 - p) drawn fresh each batch.
    Inference: y = x.

    Dividing by (1 - p) ("inverted dropout") keeps E[y] = x, so nothing needs rescaling at
    inference. Backward: dL/dx = dL/dy * m / (1 - p), the same mask as forward.
    Any shape in, same shape out. The mask is drawn from the layer's own Generator
    (``ops.dropout_forward``), so a seed reproduces it.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = get_rng(rng)

    def forward(self, x, training=False):
        if not training or self.p == 0:
            self.cache = None
            return x
        y, self.cache = ops.dropout_forward(x, self.p, self.rng)   # cache: the scaled mask
        return y

    def backward(self, dout):
        if self.cache is None:
            return dout
        return ops.dropout_backward(dout, self.cache)

    def config(self):
        return {"p": self.p}
