"""How far a classifier's probabilities can be trusted, and one number that fixes most of it.

A network is *calibrated* when, of the images it gives 90% to, 90% are right. Networks
trained with cross-entropy are usually overconfident; temperature scaling (Guo et al., "On
Calibration of Modern Neural Networks", 2017) divides the logits by one number T > 0 fitted
on held-out data, which changes every probability but never the predicted class.

    probs = model.predict(x_val)
    expected_calibration_error(probs, y_val)       # 0.0 is perfect
    T = fit_temperature(logits_val, y_val)         # then predict softmax(logits / T)

Shapes: `probabilities` and `logits` are (N, K) for N examples of K classes, `labels` (N,)
integer classes in [0, K).
"""

from __future__ import annotations

import math

import numpy as np

from .losses import log_softmax, softmax

__all__ = ["expected_calibration_error", "calibration_error", "reliability", "binned",
           "fit_temperature", "softmax_with_temperature"]

#: The interval of T searched by `fit_temperature` (on a log scale).
TEMPERATURE_RANGE = (0.05, 20.0)


def reliability(probabilities, labels, bins: int = 15):
    """Per confidence bin: (count, mean confidence, accuracy), three arrays of shape (bins,).

    An example's confidence is its largest probability, c = max_k p_k, and it is right when
    that class is its label (see `binned` for the bins). Plotting accuracy against mean
    confidence gives the reliability diagram: a calibrated model lies on the diagonal.
    """
    probabilities, labels = _checked(probabilities, labels)
    return binned(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels, bins)


def binned(confidence, right, bins: int = 15):
    """(count, mean confidence, accuracy) per bin of answers given with ``confidence`` (N,)
    in [0, 1], ``right`` (N,) saying which were right. Bin b holds the answers with c in
    ((b-1)/bins, b/bins] (bin 0 also takes c = 0), so the bins are `bins` equal-width
    intervals of [0, 1]. For an empty bin the mean confidence and the accuracy are 0."""
    confidence = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(right, dtype=np.float64)
    # ceil(c * bins) - 1 puts c exactly on an edge b/bins into bin b-1 (right-closed bins)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    filled = np.maximum(count, 1)
    mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / filled
    accuracy = np.bincount(which, weights=right, minlength=bins) / filled
    return count, mean_confidence, accuracy


def expected_calibration_error(probabilities, labels, bins: int = 15) -> float:
    """ECE = sum over bins b of (n_b / N) * |accuracy_b - confidence_b|.

    The bins are those of `reliability`: equal-width intervals of the confidence c = max_k
    p_k; accuracy_b is the fraction right and confidence_b the mean c of the n_b examples in
    bin b. 0 for a perfectly calibrated model; at most 1.
    """
    return _error(*reliability(probabilities, labels, bins))


def calibration_error(confidence, right, bins: int = 15) -> float:
    """The same ECE for any answers given with a ``confidence``, ``right`` or not (e.g. a
    reader's readings and their `Reading.confidence`)."""
    return _error(*binned(confidence, right, bins))


def _error(count, mean_confidence, accuracy) -> float:
    total = count.sum()
    if total == 0:
        return 0.0
    return float(np.sum(count * np.abs(accuracy - mean_confidence)) / total)


def softmax_with_temperature(logits, temperature: float) -> np.ndarray:
    """softmax(z / T) row by row: p_k = exp(z_k / T) / sum_j exp(z_j / T), shape (N, K).

    T > 1 flattens the probabilities, T < 1 sharpens them; the argmax never changes."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature)


def mean_nll(logits, labels, temperature: float) -> float:
    """The mean negative log-likelihood of the labels under softmax(logits / T):

        NLL(T) = -(1/N) sum_i log softmax(z_i / T)[y_i]
    """
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-np.mean(logp[np.arange(len(logp)), labels]))


def fit_temperature(logits, labels, tolerance: float = 1e-5) -> float:
    """The temperature T > 0 minimising the mean NLL of softmax(logits / T) (see `mean_nll`).

    Golden-section search on u = log T over [log 0.05, log 20] (`TEMPERATURE_RANGE`): a 1-D
    search needs no gradient and no step size, and on the log scale T = 0.1 and T = 10 are
    equally far from 1. NLL is convex in 1/T (a log-sum-exp of functions linear in 1/T,
    minus one linear in 1/T), so along log T it falls to one minimum and rises after it,
    which is what golden-section search needs. When the minimum lies beyond the range (the
    logits separate the classes perfectly, or say nothing about them) the nearer end is
    returned. `tolerance` is the final width of the interval in log T (1e-5: T to within
    0.001%).
    """
    logits, labels = _checked(logits, labels)

    def cost(u):
        return mean_nll(logits, labels, math.exp(u))

    lo, hi = math.log(TEMPERATURE_RANGE[0]), math.log(TEMPERATURE_RANGE[1])
    shrink = (math.sqrt(5) - 1) / 2                       # 0.618...: the golden ratio - 1
    a, b = hi - shrink * (hi - lo), lo + shrink * (hi - lo)
    cost_a, cost_b = cost(a), cost(b)
    while hi - lo > tolerance:
        # keep the part holding the smaller of the two inner points; its other inner
        # point is reused, so each step costs one evaluation
        if cost_a <= cost_b:
            hi, b, cost_b = b, a, cost_a
            a = hi - shrink * (hi - lo)
            cost_a = cost(a)
        else:
            lo, a, cost_a = a, b, cost_b
            b = lo + shrink * (hi - lo)
            cost_b = cost(b)
    return math.exp((lo + hi) / 2)


def _checked(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) float scores and (N,) integer labels in [0, K), or a ValueError saying why."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != (len(scores),):
        raise ValueError(f"expected scores of shape (N, K) and labels of shape (N,), got "
                         f"{scores.shape} and {labels.shape}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                        or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must be integers in [0, {scores.shape[1]})")
    return scores, labels.astype(np.int64)
