"""Softmax cross-entropy, computed from logits in a numerically stable way.

For one example with logits z (K classes) and true class t:

    p_k  = exp(z_k) / sum_j exp(z_j)                 (softmax)
    L    = -log p_t = log(sum_j exp(z_j)) - z_t       (cross-entropy)

Subtracting m = max_j z_j from every logit changes nothing mathematically but keeps exp()
from overflowing: log(sum_j exp(z_j)) = m + log(sum_j exp(z_j - m)).

The gradient is remarkably simple:  dL/dz_k = p_k - [k == t].
Averaged over a batch of N examples the loss is mean_n L_n, so dL/dz = (P - Y) / N, with Y
the one-hot labels.
"""

import numpy as np

from . import ops


def log_softmax(logits):
    """log p, row-wise, for logits of shape (N, K)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """Probabilities p (N, K), each row summing to 1."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of ``logits`` (N, K) against integer ``labels`` (N,).

    Returns ``(loss, dlogits)``: a Python float and dL/dlogits of shape (N, K), computed by
    ``ops.softmax_cross_entropy_forward`` and ``ops.softmax_cross_entropy_backward``.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    n = logits.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    loss, p = ops.softmax_cross_entropy_forward(logits, labels)
    return loss, ops.softmax_cross_entropy_backward(p, labels)
