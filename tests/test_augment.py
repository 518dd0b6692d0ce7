"""tinynet.augment: random warps of training images, reproducible from a seed."""

import numpy as np
import pytest

from tinynet import ops
from tinynet.augment import augment


def _mnist_like(n, seed=0):
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, 28, 28), dtype=np.float32)
    imgs[:, 6:22, 10:18] = rng.random((n, 16, 8), dtype=np.float32)
    return imgs


NO_FLOW = np.zeros((0, 2, 1, 1), dtype=np.float32)


def test_warp_identity_and_integer_shift(backend):
    imgs = _mnist_like(4)
    identity = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (4, 1, 1))
    np.testing.assert_array_equal(ops.warp_bilinear(imgs, identity, NO_FLOW, np.empty_like(imgs)),
                                  imgs)
    zero_flow = np.zeros((4, 2, 28, 28), np.float32)
    np.testing.assert_array_equal(
        ops.warp_bilinear(imgs, identity, zero_flow, np.empty_like(imgs)), imgs)
    # theta[:, 0, 2] = -3 reads from 3 pixels to the left: content moves 3 pixels right
    shift = identity.copy()
    shift[:, 0, 2] = -3
    out = ops.warp_bilinear(imgs, shift, NO_FLOW, np.empty_like(imgs))
    np.testing.assert_array_equal(out[:, :, 3:], imgs[:, :, :-3])
    assert np.all(out[:, :, :3] == 0)


@pytest.mark.parametrize("elastic", [0.0, 12.0])
def test_augment_reproducible_range_shape(elastic, backend):
    imgs = _mnist_like(16)
    a = augment(imgs, np.random.default_rng(7), elastic_alpha=elastic)
    b = augment(imgs, np.random.default_rng(7), elastic_alpha=elastic)
    c = augment(imgs, np.random.default_rng(8), elastic_alpha=elastic)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == imgs.shape and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    assert not np.array_equal(a, imgs)
    # a small warp keeps most of the ink
    assert 0.7 < a.sum() / imgs.sum() < 1.3
    four = augment(imgs[:, None], np.random.default_rng(7), elastic_alpha=elastic)
    assert four.shape == (16, 1, 28, 28)
    np.testing.assert_array_equal(four[:, 0], a)


def test_augment_identity_parameters_return_input():
    imgs = _mnist_like(5)
    out = augment(imgs, np.random.default_rng(0), max_shift=0, max_rotation=0, scale=(1, 1))
    np.testing.assert_array_equal(out, imgs)


def test_augment_rejects_bad_shape():
    with pytest.raises(ValueError):
        augment(np.zeros((28, 28)), np.random.default_rng(0))
