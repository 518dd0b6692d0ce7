"""Finite-difference gradient checking: the test that backpropagation is right.

For a scalar function L(theta), the central difference

    dL/dtheta_i  ~=  (L(theta + eps*e_i) - L(theta - eps*e_i)) / (2*eps)

has error O(eps^2). We compare it with the analytic gradient from ``backward`` using the
relative error of the whole array

    ||analytic - numeric|| / max(||analytic|| + ||numeric||, tiny)

(Euclidean norms). Taking norms rather than the worst single entry keeps entries whose true
gradient is ~0 (where the finite difference is pure rounding noise) from dominating. In
float64 with eps = 1e-6 a correct backward gives errors around 1e-10 to 1e-8; a wrong one
gives errors near 1, and even a 1% slip in one gradient gives about 5e-3.

To turn a layer (many outputs) into a scalar we use L = sum(y * R) with a fixed random R:
then dL/dy = R, so ``backward(R)`` must equal the numeric derivative of L. A random R catches
mistakes that a plain sum (R = 1) would hide, such as swapped output positions.

Two lines to check a new layer::

    from tinynet.gradcheck import check_layer
    assert max(check_layer(MyLayer(), x).values()) < 1e-6
"""

import numpy as np

_TINY = 1e-12


def relative_error(analytic, numeric):
    """Norm-wise relative error between two arrays of the same shape."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"shapes differ: analytic {analytic.shape} vs numeric {numeric.shape}")
    if analytic.size == 0:
        return 0.0
    denom = max(np.linalg.norm(analytic) + np.linalg.norm(numeric), _TINY)
    return float(np.linalg.norm(analytic - numeric) / denom)


def numeric_gradient(f, array, eps=1e-6):
    """dF/d(array) by central differences, perturbing ``array`` in place one entry at a time.

    ``f`` takes no arguments and returns a float computed from ``array``'s current values.
    """
    grad = np.zeros_like(array, dtype=np.float64)
    flat = array.reshape(-1)  # a view: writing to it perturbs ``array``
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        plus = f()
        flat[i] = saved - eps
        minus = f()
        flat[i] = saved
        grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


class _FrozenRandomness:
    """Replays the same random numbers on every forward pass, so a layer that draws
    randomness (Dropout) is a fixed function while we differentiate it."""

    def __init__(self, obj):
        self.rng = getattr(obj, "rng", None)
        self.state = self.rng.bit_generator.state if self.rng is not None else None

    def reset(self):
        if self.rng is not None:
            self.rng.bit_generator.state = self.state


def check_layer(layer, x, seed=0, eps=1e-6, training=True):
    """Compare ``layer.backward`` with finite differences, in float64.

    Returns ``{"x": err, <param name>: err, ...}``: the relative error of the input
    gradient and of each parameter gradient. The layer is cast to float64 in place.
    """
    layer.astype(np.float64)
    x = np.array(x, dtype=np.float64)
    frozen = _FrozenRandomness(layer)
    frozen.reset()
    y = layer.forward(x, training=training)
    R = np.random.default_rng(seed).standard_normal(y.shape)

    def loss():
        frozen.reset()
        return float(np.sum(layer.forward(x, training=training) * R))

    frozen.reset()
    layer.forward(x, training=training)
    dx = layer.backward(R.copy())
    analytic = {name: g.copy() for name, g in layer.grads.items()}

    errors = {}
    if layer.needs_input_grad:
        errors["x"] = relative_error(dx, numeric_gradient(loss, x, eps))
    for name, param in layer.params.items():
        errors[name] = relative_error(analytic[name], numeric_gradient(loss, param, eps))
    return errors


def check_model(model, x, y, seed=0, eps=1e-6, training=True, input_grad=True):
    """Gradient check of a whole ``Sequential`` model under softmax cross-entropy.

    Returns ``{"x": err, "<layer index>.<param name>": err, ...}``. ``input_grad=False``
    leaves out "x" and runs the backward as training does, the first layer skipping dL/dx
    (which can take another route to its parameters' gradients).
    """
    from .losses import softmax_cross_entropy

    for layer in model.layers:
        layer.astype(np.float64)
    x = np.array(x, dtype=np.float64)
    frozen = [_FrozenRandomness(layer) for layer in model.layers]

    def reset():
        for f in frozen:
            f.reset()

    def loss():
        reset()
        return softmax_cross_entropy(model.forward(x, training=training), y)[0]

    reset()
    _, dlogits = softmax_cross_entropy(model.forward(x, training=training), y)
    first = model.layers[0]
    keep = first.needs_input_grad
    first.needs_input_grad = input_grad
    try:
        dx = model.backward(dlogits)
    finally:
        first.needs_input_grad = keep
    errors = {"x": relative_error(dx, numeric_gradient(loss, x, eps))} if input_grad else {}
    analytic = {
        f"{i}.{name}": layer.grads[name].copy()
        for i, layer in enumerate(model.layers)
        for name in layer.params
    }
    for i, layer in enumerate(model.layers):
        for name, param in layer.params.items():
            key = f"{i}.{name}"
            errors[key] = relative_error(analytic[key], numeric_gradient(loss, param, eps))
    return errors
