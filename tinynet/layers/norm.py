"""Batch normalisation for dense (N, D) and convolutional (N, C, H, W) inputs."""

import numpy as np

from ..kernels.norm import affine, affine2, channel_sums, channel_sums_grad
from ..kernels.parallel import chunk_for, run_chunks
from .base import Layer

# Each worker thread handles about this many bytes of the input at a time.
CHUNK_BYTES = 1 << 20


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

    How it is computed (``tinynet/kernels/norm.py``): two passes over memory each way.
    Forward: one pass of per-channel sums gives mu and var (accumulated in float64 around
    the running mean, so the one-pass variance stays accurate), one pass writes
    y = gamma * inv_std * (x - mu) + beta. Backward: one pass of per-channel sums gives
    sum(G) and sum(G * (x - mu)) (= sum(G * xhat) / inv_std), one pass writes
    dx = A * G + B * (x - mu) + C with the per-channel A = gamma * inv_std,
    B = -A * inv_std * sum(G * xhat) / M and C = -A * sum(G) / M (the formula above,
    expanded). The input x is kept for backward, so xhat is never stored. Batches are
    split over the worker threads (``tinynet/kernels/parallel.py``).
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
        dt = gamma.dtype
        x = np.ascontiguousarray(x, dtype=dt)
        self._axes(x)
        N, C = x.shape[0], self.num_features
        L = x.size // (N * C)
        x3 = x.reshape(N, C, L)                 # the (N, C, L) view the kernels use
        chunk = chunk_for(N, C * L * dt.itemsize, CHUNK_BYTES)
        if training:
            M = N * L
            if M < 2:
                raise ValueError("BatchNorm needs more than one value per feature to train")
            shift = self.buffers["running_mean"]

            def sums(s, e):
                s1, s2 = np.zeros(C), np.zeros(C)
                channel_sums(x3[s:e], shift, s1, s2)
                return s1, s2

            parts = run_chunks(sums, N, chunk)
            d = sum(p[0] for p in parts) / M                 # mean(x) - shift, float64
            var64 = np.maximum(sum(p[1] for p in parts) / M - d * d, 0)
            mu, var = (shift + d).astype(dt), var64.astype(dt)
            m = self.momentum
            self.buffers["running_mean"] = (1 - m) * self.buffers["running_mean"] + m * mu
            self.buffers["running_var"] = ((1 - m) * self.buffers["running_var"]
                                           + (m * M / (M - 1)) * var)
        else:
            mu = self.buffers["running_mean"]
            var = self.buffers["running_var"]
        inv_std = (1 / np.sqrt(var + self.eps)).astype(dt)
        y = np.empty_like(x)
        y3 = y.reshape(N, C, L)
        a = (gamma * inv_std).astype(dt)
        run_chunks(lambda s, e: affine(x3[s:e], mu, a, beta, y3[s:e]), N, chunk)
        self._cache = (x3, mu, inv_std, training, chunk)
        return y

    def backward(self, dout):
        x3, mu, inv_std, training, chunk = self._cache
        gamma = self.params["gamma"]
        dt = gamma.dtype
        N, C, L = x3.shape
        G = np.ascontiguousarray(dout, dtype=dt)
        G3 = G.reshape(N, C, L)

        def sums(s, e):
            sg, sgx = np.zeros(C), np.zeros(C)
            channel_sums_grad(G3[s:e], x3[s:e], mu, sg, sgx)
            return sg, sgx

        parts = run_chunks(sums, N, chunk)
        dbeta = sum(p[0] for p in parts)                       # sum(G)
        dgamma = sum(p[1] for p in parts) * inv_std            # sum(G * xhat)
        self.grads["beta"], self.grads["gamma"] = dbeta.astype(dt), dgamma.astype(dt)
        if not self.needs_input_grad:
            return None
        scale = gamma * inv_std.astype(np.float64)
        A = scale.astype(dt)
        if training:
            M = N * L
            # dx = scale * (G - sum(G)/M - xhat * sum(G*xhat)/M), xhat = (x - mu) * inv_std
            B = (-scale * inv_std * dgamma / M).astype(dt)
            C_ = (-scale * dbeta / M).astype(dt)
        else:
            B = C_ = np.zeros(C, dtype=dt)
        dx = np.empty_like(G)
        run_chunks(lambda s, e: affine2(G3[s:e], x3[s:e], mu, A, B, C_,
                                        dx.reshape(N, C, L)[s:e]), N, chunk)
        return dx

    def config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}
