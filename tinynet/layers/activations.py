"""Element-wise activations. Each acts on every entry independently, so its backward is the
incoming gradient times the local derivative f'(x), entry by entry."""

import numpy as np

from ..kernels.elementwise import relu_backward, relu_forward
from ..kernels.parallel import map_flat
from .base import Layer


class ReLU(Layer):
    """y = max(x, 0)

    Backward: dL/dx = dL/dy * [x > 0]  (the gradient passes where the unit was active).
    Any shape in, same shape out.

    The output y is kept as the mask ([x > 0] == [y > 0]), so training stores no extra
    array; both passes are one-pass kernels (``tinynet/kernels/elementwise.py``) spread
    over the worker threads.
    """

    def forward(self, x, training=False):
        x = np.ascontiguousarray(x)
        y = np.empty_like(x)
        map_flat(relu_forward, x.size, x.reshape(-1), y.reshape(-1))
        if training:
            self.y = y
        return y

    def backward(self, dout):
        dout = np.ascontiguousarray(dout)
        dx = np.empty_like(dout)
        map_flat(relu_backward, dout.size, dout.reshape(-1), self.y.reshape(-1),
                 dx.reshape(-1))
        return dx


class LeakyReLU(Layer):
    """y = x if x > 0 else slope * x

    Backward: dL/dx = dL/dy * (1 if x > 0 else slope). Any shape.
    """

    def __init__(self, slope=0.01):
        super().__init__()
        self.slope = float(slope)

    def forward(self, x, training=False):
        if training:
            self.mask = x > 0
        return np.where(x > 0, x, x * x.dtype.type(self.slope))

    def backward(self, dout):
        return np.where(self.mask, dout, dout * dout.dtype.type(self.slope))

    def config(self):
        return {"slope": self.slope}


class Tanh(Layer):
    """y = tanh(x)

    Backward: dL/dx = dL/dy * (1 - y^2). Any shape.
    """

    def forward(self, x, training=False):
        y = np.tanh(x)
        if training:
            self.y = y
        return y

    def backward(self, dout):
        return dout * (1 - self.y * self.y)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x))

    Backward: dL/dx = dL/dy * y * (1 - y). Any shape.
    """

    def forward(self, x, training=False):
        # Written through tanh, which never overflows: sigmoid(x) = (1 + tanh(x/2)) / 2.
        y = 0.5 * (1 + np.tanh(0.5 * x))
        if training:
            self.y = y
        return y

    def backward(self, dout):
        return dout * self.y * (1 - self.y)
