"""Layers: each a small class with ``forward(x, training)`` and ``backward(dout)``."""

from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .base import Layer
from .conv import Conv2D
from .dense import Dense
from .dropout import Dropout
from .norm import BatchNorm
from .pool import MaxPool2D
from .reshape import Flatten

LAYER_TYPES = {cls.__name__: cls for cls in (Dense, ReLU, LeakyReLU, Tanh, Sigmoid, Flatten,
                                             Dropout, Conv2D, MaxPool2D, BatchNorm)}

__all__ = ["Layer", "LAYER_TYPES", *LAYER_TYPES]
