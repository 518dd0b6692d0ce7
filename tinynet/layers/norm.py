"""Batch normalisation for dense (N, D) and convolutional (N, C, H, W) inputs."""

import numpy as np

from .. import ops
from .base import Layer


class BatchNorm(Layer):
    """Normalise each feature (channel) over the batch, then scale and shift it.

    Shapes: x is (N, D) (features are columns) or (N, C, H, W) (features are channels,
    statistics taken over the N*H*W values of each channel); ``num_features`` is D or C.
    gamma, beta, running_mean, running_var are (num_features,). y has the shape of x.
    Below, "sum" and "mean" run over the M = N (dense) or M = N*H*W (conv) values of one
    feature, and the per-feature quantities broadcast back over them.

    Forward, training::

        mu    = mean(x)                      var = mean((x - mu)^2)
        xhat  = (x - mu) / sqrt(var + eps)   (zero mean, unit variance per feature)
        y     = gamma * xhat + beta          (the layer may undo the normalisation if useful)

        running_mean = (1 - momentum) * running_mean + momentum * mu
        running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

    Forward, inference (training=False): the same with mu, var replaced by the running
    statistics, so a prediction does not depend on the other images in the batch.

    Backward, given G = dL/dy (training mode)::

        dL/dbeta  = sum(G)
        dL/dgamma = sum(G * xhat)
        dL/dx     = gamma / sqrt(var + eps) * (G - mean(G) - xhat * mean(G * xhat))

    The last line is the chain rule through xhat with mu and var themselves functions of x:
    the two subtracted means remove the parts of G that only shift or stretch the whole
    feature, which normalisation cancels anyway. In inference mode mu and var are
    constants and dL/dx = gamma / sqrt(running_var + eps) * G.

    Computed by ``ops.batchnorm_moments`` (training: the batch's mu and var),
    ``ops.batchnorm_forward`` and ``ops.batchnorm_backward``; training keeps x, mu and var.
    """

    def __init__(self, num_features, momentum=0.1, eps=1e-5):
        super().__init__()
        self.num_features = int(num_features)
        self.momentum = float(momentum)
        self.eps = float(eps)
        if self.num_features < 1:
            raise ValueError(f"num_features must be positive, got {num_features}")
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        D = self.num_features
        self.params = {"gamma": np.ones(D, dtype=np.float32),
                       "beta": np.zeros(D, dtype=np.float32)}
        self.buffers = {"running_mean": np.zeros(D, dtype=np.float32),
                        "running_var": np.ones(D, dtype=np.float32)}

    def _check_input(self, x, training):
        if x.ndim not in (2, 4):
            raise ValueError(f"BatchNorm expects (N, D) or (N, C, H, W) input, got {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) got {x.shape[1]} features "
                             f"in input of shape {x.shape}")
        if training and x.size // x.shape[1] < 2:
            raise ValueError("BatchNorm needs more than one value per feature to train")

    def forward(self, x, training=False, relu=False, pool=False):
        """``relu`` and ``pool`` are for ``Sequential``, which fuses a following ReLU (and in
        training a 2x2, stride-2 max-pool after it) into this layer: the output is then
        max(y, 0) (pooled), and backward takes the gradient after them."""
        self._check_input(x, training)
        if pool and not (relu and x.ndim == 4):
            raise ValueError("BatchNorm fuses a max-pool only after a ReLU, on (N, C, H, W)")
        x = x.astype(self.params["gamma"].dtype, copy=False)
        if training:
            mean, var = ops.batchnorm_moments(x)
            self._update_running_stats(mean, var, x.size // x.shape[1])
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        p, arg = self.params, None
        if pool:
            y, arg = ops.batchnorm_relu_pool_forward(x, p["gamma"], p["beta"], mean, var,
                                                     self.eps)
        else:
            y = ops.batchnorm_forward(x, p["gamma"], p["beta"], mean, var, self.eps, relu)
        self.cache = (x, mean, var, training, relu, arg)
        return y

    def backward(self, dout):
        x, mean, var, training, relu, arg = self.cache
        p = self.params
        if arg is not None:
            dx, self.grads["gamma"], self.grads["beta"] = ops.batchnorm_relu_pool_backward(
                dout, arg, x, p["gamma"], p["beta"], mean, var, self.eps, training,
                self.needs_input_grad)
            return dx
        dx, self.grads["gamma"], self.grads["beta"] = ops.batchnorm_backward(
            dout, x, p["gamma"], p["beta"], mean, var, self.eps, training, self.needs_input_grad,
            relu)
        return dx

    def fold(self, W, b):
        """Inference only: this layer after a convolution z = conv(x, W) + b, as one
        convolution. Per channel f, with s = gamma / sqrt(running_var + eps),

            y = s * (z - running_mean) + beta = conv(x, s W) + s (b - running_mean) + beta

        so W' = W scaled by s along its first axis, b' = s (b - running_mean) + beta."""
        stats = self.buffers
        s = self.params["gamma"] / np.sqrt(stats["running_var"] + self.eps)
        W2 = W * s.reshape((-1,) + (1,) * (W.ndim - 1)).astype(W.dtype)
        return W2, (s * (b - stats["running_mean"]) + self.params["beta"]).astype(b.dtype)

    def _update_running_stats(self, mean, var, m):
        """Exponential moving averages of the batch statistics, the variance unbiased
        (times m / (m - 1), m values per feature), for use at inference."""
        k, stats = self.momentum, self.buffers
        stats["running_mean"] = (1 - k) * stats["running_mean"] + k * mean
        stats["running_var"] = (1 - k) * stats["running_var"] + (k * m / (m - 1)) * var

    def config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}
