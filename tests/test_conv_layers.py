"""Gradient checks and behaviour of Conv2D, MaxPool2D and BatchNorm."""

import json

import numpy as np
import pytest

from tinynet.gradcheck import check_layer
from tinynet.layers.conv import Conv2D
from tinynet.layers.norm import BatchNorm
from tinynet.layers.pool import MaxPool2D

TOL = 1e-6


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _rebuild(layer):
    """Rebuild from config() as a model loader would, then copy arrays over."""
    clone = type(layer)(**json.loads(json.dumps(layer.config())))
    for store, src in ((clone.params, layer.params), (clone.buffers, layer.buffers)):
        for k in src:
            store[k] = src[k].copy()
    return clone


@pytest.mark.parametrize("kwargs, shape", [
    (dict(kernel_size=3), (2, 2, 6, 7)),
    (dict(kernel_size=3, stride=2, padding=1), (2, 2, 7, 7)),
    (dict(kernel_size=(2, 3), stride=1, padding=2), (1, 3, 5, 6)),
    (dict(kernel_size=1, stride=2), (2, 2, 5, 5)),
    (dict(kernel_size=5, stride=3, padding=2), (1, 1, 8, 9)),
])
def test_conv_gradients(kwargs, shape, backend):
    layer = Conv2D(shape[1], 3, rng=np.random.default_rng(1), **kwargs)
    layer.params["b"] = np.random.default_rng(2).standard_normal(3).astype(np.float32)
    errors = check_layer(layer, _x(shape))
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < TOL, errors


def test_conv_forward_matches_definition(backend):
    rng = np.random.default_rng(3)
    layer = Conv2D(2, 3, 3, stride=2, padding=1, rng=rng).astype(np.float64)
    layer.params["b"] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 7, 6))
    y = layer.forward(x)
    W, b = layer.params["W"], layer.params["b"]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert y.shape == (2, 3, 4, 3)
    for n, f, oh, ow in [(0, 0, 0, 0), (1, 2, 3, 2), (1, 1, 2, 0)]:
        want = b[f] + np.sum(W[f] * xp[n, :, 2 * oh:2 * oh + 3, 2 * ow:2 * ow + 3])
        assert y[n, f, oh, ow] == pytest.approx(want, rel=1e-12)
    # training and inference give the same output (different code paths)
    np.testing.assert_allclose(layer.forward(x, training=True), y, rtol=1e-12)


def test_conv_first_layer_skips_input_grad(backend):
    layer = Conv2D(1, 4, 3, rng=np.random.default_rng(6))
    x = _x((3, 1, 8, 8)).astype(np.float32)
    y = layer.forward(x, training=True)
    full_grads = None
    dx = layer.backward(np.ones_like(y))
    assert dx is not None and dx.shape == x.shape
    full_grads = {k: v.copy() for k, v in layer.grads.items()}
    layer.needs_input_grad = False
    layer.forward(x, training=True)
    assert layer.backward(np.ones_like(y)) is None
    for k in ("W", "b"):        # equal up to rounding: the fast backend sums them another way
        np.testing.assert_allclose(layer.grads[k], full_grads[k], rtol=1e-5)
    errors = check_layer(layer, _x((2, 1, 6, 6)))
    assert "x" not in errors and max(errors.values()) < TOL


def test_conv_float32_and_config(backend):
    layer = Conv2D(3, 5, (3, 2), stride=2, padding=1, rng=np.random.default_rng(7))
    assert layer.params["W"].dtype == np.float32 and layer.params["W"].shape == (5, 3, 3, 2)
    # He init: std close to sqrt(2 / fan_in)
    big = Conv2D(16, 64, 3, rng=np.random.default_rng(0))
    assert big.params["W"].std() == pytest.approx(np.sqrt(2 / 144), rel=0.05)
    x = _x((2, 3, 9, 8)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and y.shape == (2, 5, 5, 5)
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in layer.grads.values())
    clone = _rebuild(layer)
    np.testing.assert_array_equal(clone.forward(x), layer.forward(x))
    with pytest.raises(ValueError):
        layer.forward(np.zeros((2, 4, 9, 8), np.float32))
    with pytest.raises(ValueError):
        Conv2D(1, 1, 5).forward(np.zeros((1, 1, 3, 3), np.float32))


@pytest.mark.parametrize("kwargs, shape", [
    (dict(pool_size=2), (2, 3, 6, 8)),
    (dict(pool_size=2), (2, 2, 7, 5)),
    (dict(pool_size=3, stride=2), (2, 2, 7, 7)),
    (dict(pool_size=(2, 3), stride=1), (1, 2, 5, 6)),
])
def test_maxpool_gradients(kwargs, shape, backend):
    layer = MaxPool2D(**kwargs)
    errors = check_layer(layer, _x(shape, 8))
    assert set(errors) == {"x"} and errors["x"] < TOL


def test_maxpool_values_float32_and_config(backend):
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    layer = _rebuild(MaxPool2D(2))
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[0, 0], [[5, 7], [13, 15]])
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.sum() == 8 and dx[0, 0, 1, 1] == 1 and dx[0, 0, 0, 0] == 0
    layer.needs_input_grad = False
    assert layer.backward(np.ones_like(y)) is None


def _bn(n, seed=9):
    rng = np.random.default_rng(seed)
    layer = BatchNorm(n)
    layer.params["gamma"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    layer.params["beta"] = rng.standard_normal(n).astype(np.float32)
    return layer


@pytest.mark.parametrize("shape", [(6, 4), (3, 3, 4, 5)])
def test_batchnorm_gradients_training(shape, backend):
    errors = check_layer(_bn(shape[1]), _x(shape, 10) * 2 + 1)
    assert set(errors) == {"x", "gamma", "beta"}
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3, 3)])
def test_batchnorm_gradients_inference(shape, backend):
    layer = _bn(shape[1])
    layer.buffers["running_mean"] = np.linspace(-1, 1, shape[1]).astype(np.float32)
    layer.buffers["running_var"] = np.linspace(0.5, 2, shape[1]).astype(np.float32)
    errors = check_layer(layer, _x(shape, 11), training=False)
    assert max(errors.values()) < TOL, errors


def test_batchnorm_normalises_and_tracks_running_stats(backend):
    layer = BatchNorm(3, momentum=0.5)
    x = (_x((50, 3, 4, 4), 12) * np.array([1, 2, 3]).reshape(1, 3, 1, 1)
         + np.array([5, -1, 0]).reshape(1, 3, 1, 1)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)
    mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.5 * mu, rtol=1e-5)
    np.testing.assert_allclose(layer.buffers["running_var"], 0.5 + 0.5 * var, rtol=1e-5)
    assert all(b.dtype == np.float32 for b in layer.buffers.values())
    # inference uses the running statistics, not the batch: one image gives the same answer
    rm, rv = layer.buffers["running_mean"], layer.buffers["running_var"]
    want = (x - rm.reshape(1, 3, 1, 1)) / np.sqrt(rv.reshape(1, 3, 1, 1) + 1e-5)
    y_eval = layer.forward(x, training=False)
    np.testing.assert_allclose(y_eval, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.forward(x[:1], training=False), y_eval[:1], rtol=1e-6)
    assert layer.buffers["running_mean"] is rm        # inference does not update them
    clone = _rebuild(layer)
    np.testing.assert_array_equal(clone.forward(x, training=False), y_eval)


def test_batchnorm_dense_float32_and_errors(backend):
    layer = _bn(5)
    x = _x((8, 5), 13).astype(np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    # a constant upstream gradient is exactly cancelled by the normalisation
    np.testing.assert_allclose(dx, 0, atol=1e-5)
    layer.needs_input_grad = False
    assert layer.backward(np.ones_like(y)) is None and layer.grads["gamma"].shape == (5,)
    with pytest.raises(ValueError):
        layer.forward(np.zeros((8, 4), np.float32))
    with pytest.raises(ValueError):
        layer.forward(np.zeros((8, 5, 2), np.float32))
