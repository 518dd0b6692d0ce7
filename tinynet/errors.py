"""The exceptions tinynet raises on bad input.

Every error a user can cause with a file or an argument derives from `TinynetError`, so a
program can catch one type and print its message. Each subclass names the kind of input at
fault; the message names the file (when there is one) and the reason.
"""


class TinynetError(Exception):
    """Base class of every error caused by bad input to tinynet."""


class DataError(TinynetError):
    """An MNIST/IDX file is missing, malformed, truncated or fails its checksum."""


class ModelFileError(TinynetError):
    """A saved model cannot be loaded: missing, corrupt, unsafe or incompatible."""


class ImageError(TinynetError):
    """An image file cannot be read, or holds no digit."""


class TrainingError(TinynetError):
    """Training cannot go on (for example the loss became NaN or infinite)."""
