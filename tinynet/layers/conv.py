"""2-D convolution layer (NCHW), computed as im2col + one matrix product per image."""

import numpy as np

from .. import ops
from ..init import get_rng, he_normal
from ..ops.reference import conv_output_size
from .base import Layer


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

    How it is computed: im2col (``tinynet/ops/reference.py``) copies, for image n,
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
    to each image's ``cols`` matrix, plus col2im, the adjoint of the copy. Computed by
    ``ops.conv2d_forward`` / ``ops.conv2d_backward``; training keeps the input x, and a dict
    ``saved`` in which the backend may keep more for backward (the fast backend's Winograd
    path keeps its transformed input tiles there; the reference keeps nothing).
    When ``needs_input_grad`` is false (first layer of a network) dL/dx is skipped.
    Weights: He normal, std = sqrt(2 / (C*kh*kw)).
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

    def forward(self, x, training=False, relu=False, bn=None, pool=False, channels_last=False):
        """``relu``, ``bn`` and ``pool`` are for ``Sequential``, which fuses a following ReLU
        (and a 2x2 max-pool after it, and at inference a BatchNorm before it) into this
        layer's op: y = max(conv(x) + b, 0), with the BatchNorm folded into W and b
        (``BatchNorm.fold``), pooled. Same math, fewer passes over memory; in training the
        op keeps where each pooled maximum was, for the backward. ``channels_last``: y goes
        straight into another Conv2D (a layout hint for the op, see ``ops.conv2d_forward``;
        the values are the same)."""
        self._check_input(x)
        W, b = self.params["W"], self.params["b"]
        if bn is not None:
            W, b = bn.fold(W, b)
        saved = {} if training else None           # what the backend keeps for backward
        y = ops.conv2d_forward(x, W, b, self.stride, self.padding, relu, pool, saved,
                               channels_last)
        if training:
            self.cache = (x, y if relu else None, saved)   # y: the fused ReLU's mask
        return y

    def backward(self, dout):
        x, relu_out, saved = self.cache
        dx, self.grads["W"], self.grads["b"] = ops.conv2d_backward(
            dout, x, self.params["W"], self.stride, self.padding, self.needs_input_grad,
            relu_out, saved)
        return dx

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding}
