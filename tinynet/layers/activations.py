"""Element-wise activations. Each acts on every entry independently, so its backward is the
incoming gradient times the local derivative f'(x), entry by entry."""

import numpy as np

from .. import ops
from .base import Layer


class ReLU(Layer):
    """y = max(x, 0)

    Backward: dL/dx = dL/dy * [x > 0]  (the gradient passes where the unit was active).
    Any shape in, same shape out.

    The output y is kept as the mask ([x > 0] == [y > 0]), so training stores no extra
    array. Computed by ``ops.relu_forward`` / ``ops.relu_backward``.
    """

    def forward(self, x, training=False):
        y = ops.relu_forward(x)
        if training:
            self.cache = y
        return y

    def backward(self, dout):
        return ops.relu_backward(dout, self.cache)


class LeakyReLU(Layer):
    """y = x if x > 0 else slope * x

    Backward: dL/dx = dL/dy * (1 if x > 0 else slope). Any shape.
    """

    def __init__(self, slope=0.01):
        super().__init__()
        self.slope = float(slope)

    def forward(self, x, training=False):
        if training:
            self.cache = x > 0
        return np.where(x > 0, x, x * x.dtype.type(self.slope))

    def backward(self, dout):
        return np.where(self.cache, dout, dout * dout.dtype.type(self.slope))

    def config(self):
        return {"slope": self.slope}


class Tanh(Layer):
    """y = tanh(x)

    Backward: dL/dx = dL/dy * (1 - y^2). Any shape.
    """

    def forward(self, x, training=False):
        y = np.tanh(x)
        if training:
            self.cache = y
        return y

    def backward(self, dout):
        y = self.cache
        return dout * (1 - y * y)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x))

    Backward: dL/dx = dL/dy * y * (1 - y). Any shape.
    """

    def forward(self, x, training=False):
        # Written through tanh, which never overflows: sigmoid(x) = (1 + tanh(x/2)) / 2.
        y = 0.5 * (1 + np.tanh(0.5 * x))
        if training:
            self.cache = y
        return y

    def backward(self, dout):
        y = self.cache
        return dout * y * (1 - y)
