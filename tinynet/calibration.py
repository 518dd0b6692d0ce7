"""Calibration: whether a model's probabilities mean what they say, and a fix when not.

A model is calibrated when, of all the answers it gives with confidence about c, a fraction
c is right. The expected calibration error (ECE) measures the gap: sort the answers into
equal-width bins by confidence (the largest probability), and average |accuracy - mean
confidence| over the bins, weighted by how many answers each holds:

    ECE = sum_b (n_b / N) |acc_b - conf_b|

Networks trained with cross-entropy tend to be overconfident. Temperature scaling divides the
logits by one number T > 0 before the softmax, chosen to minimise the negative
log-likelihood on held-out data; it never changes which class is most probable.
"""

import math

import numpy as np

from .losses import log_softmax


def reliability(probabilities, labels, bins=15):
    """Per confidence bin: (count, mean confidence, accuracy), three arrays of length ``bins``
    (bin b holds confidences in (b/bins, (b+1)/bins]; empty bins have count 0 and NaNs)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, minlength=bins) / count
        accuracy = np.bincount(which, right.astype(np.float64), minlength=bins) / count
    return count, mean_conf, accuracy


def expected_calibration_error(probabilities, labels, bins=15):
    """ECE (see the module docstring) of probabilities (N, K) against integer labels (N,)."""
    count, mean_conf, accuracy = reliability(probabilities, labels, bins)
    used = count > 0
    return float((count[used] * np.abs(accuracy[used] - mean_conf[used])).sum()
                 / max(count.sum(), 1))


def negative_log_likelihood(logits, labels, temperature=1.0):
    """Mean -log softmax(logits / T)[label]."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits, labels, low=0.05, high=20.0, steps=60):
    """The T in [low, high] minimising the NLL of softmax(logits / T), by golden-section
    search on log T (the NLL is smooth and has one minimum in T for any fixed data)."""
    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2

    def nll(log_t):
        return negative_log_likelihood(logits, labels, math.exp(log_t))

    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2)
