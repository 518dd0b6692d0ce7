"""A distance test in feature space: is an image far from every digit the network has seen?

A network's "not a digit" output only knows the non-digits it was trained on; shown
something unlike all of them (a letter in a new font, a drawing) it may still name a digit
with confidence. What the network computes on the way can tell more: the input of its last
layer (the features, k = 128 numbers for the shipped networks) gathers the training digits of
each class around a centre, and an image whose features lie far from every centre is
unlike any digit the network was trained on, whatever its output says.

"Far" is measured with the Mahalanobis distance under the spread of the training digits'
features around their class centres: for features h, class centres mu_c and the covariance
S of (h_i - mu_{y_i}) over the N training digits,

    d_c(h) = (h - mu_c)^T S^-1 (h - mu_c),     score(x) = (1/M) sum_m min_c d_c(h_m(x))

averaged over the M networks of an ensemble (M = 1 for one network). With W the Cholesky
factor of S^-1 (S^-1 = W W^T), d_c(h) = ||(h - mu_c) W||^2: the features are whitened once
and compared with whitened centres, so a batch costs one (N, k) @ (k, k) product per network.

The threshold is the score that all but ``QUANTILE`` of held-out digits (training digits the
network did not learn from) stay within, so by construction about 0.1% of digits like them
are called far; ``relative`` divides by it, so a relative distance above 1 means far.
"""

import math

import numpy as np

from .errors import ModelFileError

#: The share of held-out digits whose score is at most the threshold.
QUANTILE = 0.999
#: Added to the covariance's diagonal, as a share of its mean variance: features that never
#: vary (a ReLU that is always 0) would otherwise make S singular.
RIDGE = 1e-6
#: The keys of the arrays in a model file: (M, C, k) whitened centres, (M, k, k) W.
ARRAY_KEYS = ("feature_distance.centres", "feature_distance.whiten")


class FeatureDistance:
    """Whitened class centres and whitening matrices of M networks, and the threshold."""

    def __init__(self, centres, whiten, threshold):
        self.centres = np.asarray(centres, dtype=np.float64)    # (M, C, k): mu_c W
        self.whiten = np.asarray(whiten, dtype=np.float64)      # (M, k, k): W
        self.threshold = float(threshold)

    def score(self, features):
        """(N,) scores for a list of M (N, k) feature arrays, one per network."""
        total = 0.0
        for h, centres, whiten in zip(features, self.centres, self.whiten):
            g = np.asarray(h, dtype=np.float64).reshape(len(h), -1) @ whiten
            # ||g - c||^2 = ||g||^2 - 2 g.c + ||c||^2, for every centre at once
            d = (g * g).sum(axis=1)[:, None] - 2.0 * g @ centres.T + (centres ** 2).sum(axis=1)
            total = total + np.maximum(d.min(axis=1), 0.0)
        return total / len(self.centres)

    def relative(self, features):
        """The scores in units of the threshold: above 1 is far from every digit."""
        return self.score(features) / self.threshold

    def arrays(self):
        return dict(zip(ARRAY_KEYS, (self.centres, self.whiten)))

    def describe(self):
        return {"threshold": self.threshold, "quantile": QUANTILE}

    @classmethod
    def from_arrays(cls, arrays, described, networks, path):
        """The test stored in a model file (``described``: its entry in the description),
        checked against the M ``networks`` it belongs to. Raises ModelFileError."""
        threshold = described.get("threshold") if isinstance(described, dict) else None
        if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                or not math.isfinite(threshold) or threshold <= 0):
            raise ModelFileError(f"{path}: the feature distance's threshold is "
                                 f"{threshold!r}, not a positive number")
        for key in ARRAY_KEYS:
            if key not in arrays:
                raise ModelFileError(f"{path}: missing array {key}")
            if not np.issubdtype(arrays[key].dtype, np.floating) \
                    or not np.all(np.isfinite(arrays[key])):
                raise ModelFileError(f"{path}: array {key} must hold finite floats")
        centres, whiten = (arrays[key] for key in ARRAY_KEYS)
        last = networks[0].layers[-1].params.get("W")
        if last is None or last.ndim != 2:
            raise ModelFileError(f"{path}: has a feature distance, which needs networks "
                                 "ending in a Dense layer")
        k = last.shape[0]
        if centres.ndim != 3 or centres.shape[0] != len(networks) or centres.shape[2] != k \
                or whiten.shape != (len(networks), k, k):
            raise ModelFileError(
                f"{path}: the feature distance's arrays have shapes {centres.shape} and "
                f"{whiten.shape}; {len(networks)} networks of {k} features need "
                f"({len(networks)}, classes, {k}) and ({len(networks)}, {k}, {k})")
        return cls(centres, whiten, threshold)


def networks_of(model):
    """The networks whose features a model's test reads: an ensemble's members, or itself."""
    return list(getattr(model, "members", [model]))


def features(model, images, batch_size=1000):
    """Each network's (N, k) features for (N, 1, 28, 28) images, as a list."""
    return [np.concatenate([net.features(images[i:i + batch_size])
                            for i in range(0, len(images), batch_size)]).reshape(len(images), -1)
            for net in networks_of(model)]


def fit(model, images, labels, held_out, classes=10):
    """Fit the test to ``model`` (a network or an ensemble): class centres and covariance
    from ``images`` with their ``labels`` (only labels below ``classes`` count: the digits;
    one centre for each that occurs), the threshold from the digits ``held_out``. Returns a
    ``FeatureDistance``."""
    labels = np.asarray(labels)
    digits = labels < classes
    images, labels = images[digits], labels[digits]
    present, index = np.unique(labels, return_inverse=True)
    centres, whiten = [], []
    for h in features(model, images):
        h = h.astype(np.float64)
        mu = np.stack([h[index == c].mean(axis=0) for c in range(len(present))])
        spread = h - mu[index]
        cov = spread.T @ spread / len(h)
        cov += np.eye(len(cov)) * (RIDGE * np.trace(cov) / len(cov))
        w = np.linalg.cholesky(np.linalg.inv(cov))
        centres.append(mu @ w)
        whiten.append(w)
    test = FeatureDistance(np.stack(centres), np.stack(whiten), 1.0)
    test.threshold = float(np.quantile(test.score(features(model, held_out)), QUANTILE))
    return test
