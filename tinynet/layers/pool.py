"""Max pooling (NCHW)."""

from .. import ops
from ..ops.reference import pool_output_size
from .base import Layer


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

    (a sum only matters when windows overlap). No parameters. Computed by
    ``ops.maxpool_forward`` / ``ops.maxpool_backward``.
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

    def forward(self, x, training=False):
        if x.ndim != 4:
            raise ValueError(f"MaxPool2D expects input of shape (N, C, H, W), got {x.shape}")
        if (pool_output_size(x.shape[2], self.ph, self.stride) < 1
                or pool_output_size(x.shape[3], self.pw, self.stride) < 1):
            raise ValueError(f"input plane {x.shape[2:]} is smaller than the pool window")
        y, arg = ops.maxpool_forward(x, self.ph, self.pw, self.stride, need_arg=training)
        if training:
            self.cache = (arg, x.shape)
        return y

    def backward(self, dout):
        if not self.needs_input_grad:
            return None
        arg, x_shape = self.cache
        return ops.maxpool_backward(dout, arg, x_shape)

    def config(self):
        return {"pool_size": self.pool_size, "stride": self.stride}
