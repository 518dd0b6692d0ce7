import os

import numpy as np
import pytest

from tinynet import data
from tinynet.errors import DataError


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST arrays. Skipped only when no copy can be found and TINYNET_DATA is
    unset; with TINYNET_DATA set, a missing or broken copy is a failure, not a skip."""
    if os.environ.get("TINYNET_DATA"):
        return data.load_mnist(download=False)
    try:
        return data.load_mnist(download=False)
    except DataError as exc:
        pytest.skip(f"MNIST not available (set TINYNET_DATA to a folder with it): {exc}")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
