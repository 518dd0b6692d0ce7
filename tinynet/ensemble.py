"""Ensemble: several trained networks answering as one model.

Networks trained from different random starts make different mistakes, so averaging them
is right more often than any one of them. The members' answers are averaged as
log-probabilities (a geometric mean of their probabilities, renormalised by the softmax):

    logits(x) = (1/M) sum_m log softmax(f_m(x)) / T

and ``predict`` returns softmax(logits). The temperature T > 0 calibrates the probabilities
(``tinynet.calibration.fit_temperature`` chooses it on held-out data): T > 1 softens
overconfident answers, and dividing by T never changes which class is most probable.

An ensemble saves to one ``.npz`` (``tinynet.load`` rebuilds it): member m's arrays are
stored under ``m<m>.`` prefixes, and the description lists each member's layers.
"""

import json

import numpy as np

from .files import atomic_write
from .losses import log_softmax
from .model import META_KEY, Sequential, with_feature_distance

ENSEMBLE_FORMAT = 2


class Ensemble:
    """Members (``Sequential`` networks with the same inputs and outputs) averaged as above.

    Used like a ``Sequential`` for inference: ``forward(x)`` gives (N, K) logits, ``predict``
    probabilities, and ``save``/``tinynet.load`` round-trip it. Its members are trained as
    networks of their own (``tinynet.recipes.run`` trains an ensemble recipe's networks side
    by side, one per core); an ensemble itself has no backward pass.
    """

    def __init__(self, members, temperature=1.0, metadata=None):
        self.members = list(members)
        if not self.members:
            raise ValueError("an Ensemble needs at least one member")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.metadata = dict(metadata or {})
        #: A fitted ``feature_distance.FeatureDistance`` over the members' features, or None.
        self.feature_distance = None

    def forward(self, x, training=False):
        if training:
            raise TypeError("an Ensemble is not trained as one: train its members")
        return self._average([m.forward(x, training=False) for m in self.members])

    def forward_with_distance(self, x):
        """(logits, relative feature distance) of a batch, from one pass of each member."""
        features = [m.features(x) for m in self.members]
        logits = [m.layers[-1].forward(h) for m, h in zip(self.members, features)]
        return self._average(logits), self.feature_distance.relative(features)

    def _average(self, member_logits):
        total = sum(log_softmax(z) for z in member_logits)
        return (total / (len(self.members) * self.temperature)).astype(np.float32)

    predict = Sequential.predict

    def num_params(self):
        return sum(m.num_params() for m in self.members)

    def describe(self):
        return {"members": [m.describe() for m in self.members],
                "temperature": self.temperature}

    def summary(self):
        first = self.members[0].summary().splitlines()[:-1]
        return "\n".join([f"ensemble of {len(self.members)} networks like this one, "
                          f"temperature {self.temperature:.3f}:", *first,
                          f"{self.num_params():,} parameters in all"])

    def save(self, path):
        """Write the ensemble to ``path`` as one .npz, atomically (see ``Sequential.save``)."""
        arrays = {f"m{k}.{key}": value for k, member in enumerate(self.members)
                  for key, value in member.arrays().items()}
        meta = {"format": "tinynet", "format_version": ENSEMBLE_FORMAT,
                **self.describe(), "metadata": self.metadata}
        with_feature_distance(self, meta, arrays)
        arrays[META_KEY] = np.array(json.dumps(meta))
        atomic_write(path, lambda f: np.savez(f, **arrays))


def member_arrays(arrays, k, layers):
    """The arrays of member ``k`` as a file of one ``Sequential`` would hold them."""
    prefix = f"m{k}."
    own = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
    own[META_KEY] = np.array(json.dumps({"format": "tinynet", "format_version": 1,
                                         "layers": layers, "metadata": {}}))
    return own
