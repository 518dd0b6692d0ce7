"""Batch normalisation for dense (N, D) and convolutional (N, C, H, W) inputs."""

import numpy as np

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
        self._cache = None

    def _axes(self, x):
        """Reduction axes and the shape that broadcasts a (num_features,) vector over x."""
        if x.ndim == 2:
            axes, shape = (0,), (1, -1)
        elif x.ndim == 4:
            axes, shape = (0, 2, 3), (1, -1, 1, 1)
        else:
            raise ValueError(f"BatchNorm expects (N, D) or (N, C, H, W) input, got {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) got {x.shape[1]} features "
                             f"in input of shape {x.shape}")
        return axes, shape

    def forward(self, x, training=False):
        gamma, beta = self.params["gamma"], self.params["beta"]
        x = np.asarray(x, dtype=gamma.dtype)
        axes, shape = self._axes(x)
        if training:
            M = x.size // self.num_features
            if M < 2:
                raise ValueError("BatchNorm needs more than one value per feature to train")
            mu = x.mean(axis=axes)
            xc = x - mu.reshape(shape)
            var = np.mean(xc * xc, axis=axes)
            m = self.momentum
            self.buffers["running_mean"] = (1 - m) * self.buffers["running_mean"] + m * mu
            self.buffers["running_var"] = ((1 - m) * self.buffers["running_var"]
                                           + (m * M / (M - 1)) * var)
        else:
            mu = self.buffers["running_mean"]
            var = self.buffers["running_var"]
            xc = x - mu.reshape(shape)
        inv_std = 1 / np.sqrt(var + self.eps)
        xhat = xc * inv_std.reshape(shape)
        self._cache = (xhat, inv_std, training, axes, shape)
        return gamma.reshape(shape) * xhat + beta.reshape(shape)

    def backward(self, dout):
        xhat, inv_std, training, axes, shape = self._cache
        gamma = self.params["gamma"]
        dbeta = dout.sum(axis=axes)
        dgamma = (dout * xhat).sum(axis=axes)
        self.grads["beta"], self.grads["gamma"] = dbeta, dgamma
        if not self.needs_input_grad:
            return None
        scale = (gamma * inv_std).reshape(shape)
        if not training:
            return scale * dout
        M = dout.size // self.num_features
        return scale * (dout - (dbeta / M).reshape(shape) - xhat * (dgamma / M).reshape(shape))

    def config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}
