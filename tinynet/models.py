"""The networks tinynet ships, as functions that build them.

``mlp`` is the original digit-recognizer's network. The convolutional ones are added by the
conv layers (see ``cnn``). Every builder takes a ``numpy.random.Generator`` (or a seed).
"""

from .init import get_rng
from .layers import Dense, Flatten, ReLU
from .model import Sequential


def mlp(rng=None, hidden=(128, 128)):
    """784-128-128-10 with ReLU: the network of the original script."""
    rng = get_rng(rng)
    layers = [Flatten()]
    width = 28 * 28
    for h in hidden:
        layers += [Dense(width, h, rng=rng), ReLU()]
        width = h
    layers.append(Dense(width, 10, init="glorot", rng=rng))
    return Sequential(layers)


BUILDERS = {"mlp": mlp}
