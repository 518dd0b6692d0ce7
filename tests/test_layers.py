import numpy as np
import pytest

from tinynet.gradcheck import check_layer
from tinynet.layers import Dense, Dropout, Flatten, LeakyReLU, ReLU, Sigmoid, Tanh

TOL = 1e-6


def away_from_zero(rng, shape):
    # ReLU-like kinks at 0 break finite differences; keep inputs clear of them.
    x = rng.standard_normal(shape)
    return x + np.sign(x) * 0.1


def test_dense_gradients_match_finite_differences(rng, backend):
    errors = check_layer(Dense(7, 5, rng=rng), rng.standard_normal((4, 7)))
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < TOL


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(0.1), Tanh(), Sigmoid(), Flatten()],
                         ids=lambda layer: type(layer).__name__)
def test_activation_gradients_match_finite_differences(layer, rng, backend):
    errors = check_layer(layer, away_from_zero(rng, (3, 2, 4)))
    assert errors["x"] < TOL


def test_dropout_gradient_uses_the_forward_mask(rng, backend):
    errors = check_layer(Dropout(0.5, rng=np.random.default_rng(0)), rng.standard_normal((6, 5)))
    assert errors["x"] < TOL


def test_dense_computes_x_w_plus_b():
    layer = Dense(2, 2)
    layer.params["W"][...] = [[1, 2], [3, 4]]
    layer.params["b"][...] = [10, 20]
    y = layer.forward(np.array([[1, 1], [2, 0]], dtype=np.float32))
    np.testing.assert_array_equal(y, [[14, 26], [12, 24]])


def test_dense_rejects_wrong_input_width():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        Dense(3, 2).forward(np.zeros((2, 4), dtype=np.float32))


def test_first_layer_skips_input_gradient(rng, backend):
    layer = Dense(3, 2, rng=rng)
    layer.needs_input_grad = False
    layer.forward(np.ones((2, 3), dtype=np.float32), training=True)
    assert layer.backward(np.ones((2, 2), dtype=np.float32)) is None
    np.testing.assert_allclose(layer.grads["W"], np.full((3, 2), 2.0))


@pytest.mark.parametrize("layer", [Dense(4, 3), ReLU(), LeakyReLU(), Tanh(), Sigmoid(),
                                   Dropout(0.3)], ids=lambda layer: type(layer).__name__)
def test_layers_keep_float32(layer, backend):
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_he_init_has_the_right_scale():
    W = Dense(1000, 500, rng=np.random.default_rng(0)).params["W"]
    assert W.dtype == np.float32
    assert abs(W.std() - np.sqrt(2 / 1000)) < 0.002
    assert abs(W.mean()) < 0.002


def test_same_seed_same_weights():
    a = Dense(5, 3, rng=np.random.default_rng(7)).params["W"]
    b = Dense(5, 3, rng=np.random.default_rng(7)).params["W"]
    np.testing.assert_array_equal(a, b)


def test_dropout_is_identity_at_inference_and_keeps_the_mean_in_training(backend):
    x = np.ones((200, 500), dtype=np.float32)
    layer = Dropout(0.25, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert abs(y.mean() - 1.0) < 0.01


def test_relu_passes_gradient_only_where_active(backend):
    layer = ReLU()
    layer.forward(np.array([[-1.0, 2.0, 0.0, 3.0]]), training=True)
    np.testing.assert_array_equal(layer.backward(np.array([[5.0, 6.0, 7.0, 8.0]])),
                                  [[0, 6, 0, 8]])
