"""Weight initialisation.

A layer's weights start random so that units differ, and scaled so that the variance of the
activations neither grows nor shrinks from layer to layer:

* He (Kaiming) normal, for layers followed by ReLU: std = sqrt(2 / fan_in). ReLU zeroes
  half its inputs, so the factor 2 restores the variance.
* Glorot (Xavier) uniform, for linear/tanh outputs: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).

All take a ``numpy.random.Generator`` so a run is reproducible from its seed.
"""

import numpy as np


def he_normal(rng, shape, fan_in, dtype=np.float32):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def glorot_uniform(rng, shape, fan_in, fan_out, dtype=np.float32):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def get_rng(rng):
    """Accept a Generator, a seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
