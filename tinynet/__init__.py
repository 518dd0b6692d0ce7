"""tinynet: a small neural-network library written by hand in NumPy, with Numba-compiled
hot loops, and the handwritten-digit recognizer built on it.

Reading order for learners: layers/base.py, layers/dense.py (and the ops it calls, in
ops/reference.py), layers/activations.py, losses.py, model.py, optim.py, train.py,
gradcheck.py. ``TINYNET_OPS=reference|fast`` picks the ops backend; ``tinynet.ops.backend()``
names the one in use.
"""

from . import data, gradcheck, layers, losses, ops, optim
from .errors import DataError, ImageError, ModelFileError, TinynetError, TrainingError
from .layers import (
                     BatchNorm,
                     Conv2D,
                     Dense,
                     Dropout,
                     Flatten,
                     LeakyReLU,
                     MaxPool2D,
                     ReLU,
                     Sigmoid,
                     Tanh,
)
from .model import Sequential, load
from .optim import SGD, Adam
from .reader import NOT_A_DIGIT, Digit, NotADigit, ReadError, Reading, read, read_many

__version__ = "0.1.0"

__all__ = [
    "Adam", "BatchNorm", "Conv2D", "DataError", "Dense", "Digit", "Dropout", "Flatten",
    "ImageError", "LeakyReLU", "MaxPool2D", "ModelFileError", "NOT_A_DIGIT", "NotADigit",
    "ReLU", "ReadError", "Reading",
    "SGD", "Sequential", "Sigmoid", "Tanh", "TinynetError", "TrainingError", "data",
    "gradcheck", "layers", "load", "losses", "ops", "optim", "read", "read_many",
]
