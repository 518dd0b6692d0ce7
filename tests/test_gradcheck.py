import numpy as np

from tinynet import networks
from tinynet.gradcheck import check_layer, check_model
from tinynet.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU, Tanh
from tinynet.model import Sequential


def test_whole_model_gradients_match(rng, backend):
    model = Sequential([Dense(6, 5, rng=rng), Tanh(), Dropout(0.3, rng=rng), Dense(5, 3, rng=rng)])
    errors = check_model(model, rng.standard_normal((4, 6)), np.array([0, 2, 1, 2]))
    assert len(errors) == 5  # x and two params per Dense
    assert max(errors.values()) < 1e-6


def test_shipped_mlp_gradients_match(rng, backend):
    model = networks.mlp(rng, hidden=(8, 6))
    x = rng.random((3, 1, 28, 28)) + 0.05
    errors = check_model(model, x, np.array([1, 7, 3]))
    assert max(errors.values()) < 1e-6


class WrongDense(Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["W"] = self.grads["W"] * 1.01  # a 1% mistake
        return dx


def test_a_wrong_backward_is_caught(rng):
    errors = check_layer(WrongDense(4, 3, rng=rng), rng.standard_normal((5, 4)))
    assert errors["W"] > 1e-3
    assert errors["x"] < 1e-6


class Square(Layer):
    """y = x^2 ; dL/dx = 2 x dL/dy. The example of a learner's own layer in the docs."""

    def forward(self, x, training=False):
        self.x = x
        return x * x

    def backward(self, dout):
        return 2 * self.x * dout


def test_a_learners_layer_checks_in_two_lines(rng):
    assert check_layer(Square(), rng.standard_normal((3, 4)))["x"] < 1e-6


def test_relu_model_input_gradient(rng, backend):
    model = Sequential([Dense(5, 4, rng=rng), ReLU(), Dense(4, 3, rng=rng)])
    errors = check_model(model, rng.standard_normal((2, 5)), np.array([0, 1]))
    assert errors["x"] < 1e-6


def test_batchnorm_with_its_relu_fused_gradients_match(rng, backend):
    """Sequential computes BatchNorm + ReLU as one op in training; the gradients stay exact."""
    model = Sequential([Conv2D(2, 3, 3, padding=1, rng=rng), BatchNorm(3), ReLU(), Flatten(),
                        Dense(48, 5, rng=rng), BatchNorm(5), ReLU(), Dense(5, 3, rng=rng)])
    x = rng.standard_normal((4, 2, 4, 4))
    errors = check_model(model, x, np.array([0, 2, 1, 2]))
    assert model._fused == {2, 6}               # both ReLUs ran inside their BatchNorm
    # a bias just before a BatchNorm has no effect, so its gradient is 0 and a relative error
    # of it means nothing: those are checked to be 0
    zero = {"0.b", "4.b"}
    assert len(errors) == 11 and max(e for k, e in errors.items() if k not in zero) < 1e-6
    for i in (0, 4):
        assert np.abs(model.layers[i].grads["b"]).max() < 1e-12


def test_batchnorm_relu_and_max_pool_fused_gradients_match(rng, backend):
    """In training Sequential also runs a 2x2 max-pool after BatchNorm + ReLU inside the
    BatchNorm's op (never writing the unpooled output); odd planes drop their last row and
    column as the pool does. The gradients stay exact."""
    model = Sequential([Conv2D(2, 3, 3, padding=1, rng=rng), BatchNorm(3), ReLU(), MaxPool2D(2),
                        Flatten(), Dense(12, 3, rng=rng)])
    x = rng.standard_normal((4, 2, 5, 4))
    errors = check_model(model, x, np.array([0, 2, 1, 2]))
    assert model._fused == {2, 3}               # ReLU and max-pool ran inside the BatchNorm
    assert max(e for k, e in errors.items() if k != "0.b") < 1e-6
    assert np.abs(model.layers[0].grads["b"]).max() < 1e-12


def test_conv_relu_and_max_pool_fused_gradients_match(rng, backend):
    """In training Sequential also runs a Conv2D, its ReLU and a 2x2 max-pool as one op
    (the Winograd path with 8 input channels, im2col with 2); the pooled maxima's positions
    are all the backward keeps. Odd planes drop their last row and column, as the pool
    does. The gradients stay exact."""
    for channels, size in ((8, (7, 6)), (2, (5, 4))):
        model = Sequential([Conv2D(channels, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2),
                            Flatten(), Dense(3 * (size[0] // 2) * (size[1] // 2), 3, rng=rng)])
        x = rng.standard_normal((3, channels) + size)
        errors = check_model(model, x, np.array([0, 2, 1]))
        assert model._fused == {1, 2}           # ReLU and max-pool ran inside the Conv2D
        assert len(errors) == 5 and max(errors.values()) < 1e-6


def test_conv_and_max_pool_without_relu_fused_gradients_match(rng, backend):
    """A 2x2 max-pool straight after a Conv2D (the fast recipe's conv2, whose batch norm comes
    after the pool) runs inside it too: the Winograd path (8 channels), im2col (2) and a
    first layer taking dL/dW by taps from the pooled gradient (1, no dL/dx). Exact."""
    for channels, size, input_grad in ((8, (7, 6), True), (2, (5, 4), True), (1, (6, 7), False)):
        model = Sequential([Conv2D(channels, 3, 3, padding=1, rng=rng), MaxPool2D(2),
                            Flatten(), Dense(3 * (size[0] // 2) * (size[1] // 2), 3, rng=rng)])
        x = rng.standard_normal((3, channels) + size)
        errors = check_model(model, x, np.array([0, 2, 1]), input_grad=input_grad)
        assert model._fused == {1}              # the max-pool ran inside the Conv2D
        assert len(errors) == 4 + input_grad and max(errors.values()) < 1e-6


def test_first_layer_conv_relu_and_pool_gradients_match_without_input_grad(rng, backend):
    """A first layer, which skips dL/dx, takes its weight and bias gradients by taps in the
    fast backend (one pass with the ReLU's mask: ``conv.weight_grad_by_taps``), padded or
    not, with its ReLU and max-pool fused or on their own. The gradients stay exact."""
    for padding, pool in ((0, True), (1, False)):
        tail = [MaxPool2D(2)] if pool else []
        side = (6 + 2 * padding - 2) // (2 if pool else 1)
        model = Sequential([Conv2D(1, 3, 3, padding=padding, rng=rng), ReLU(), *tail,
                            Flatten(), Dense(3 * side * side, 3, rng=rng)])
        errors = check_model(model, rng.standard_normal((3, 1, 6, 6)), np.array([0, 2, 1]),
                             input_grad=False)
        assert sorted(errors) == ["0.W", "0.b", f"{3 + pool}.W", f"{3 + pool}.b"]
        assert max(errors.values()) < 1e-6
