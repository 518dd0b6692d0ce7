"""Layers that only change the shape of their input."""

import math

from .base import Layer


class Flatten(Layer):
    """y = x reshaped to (N, everything else)

    Shapes: x (N, d1, d2, ...), y (N, d1*d2*...). Backward reshapes the gradient back:
    dL/dx = reshape(dL/dy, x.shape). No arithmetic, so no gradient changes.
    """

    def forward(self, x, training=False):
        self.cache = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))   # also for N = 0

    def backward(self, dout):
        return dout.reshape(self.cache)
