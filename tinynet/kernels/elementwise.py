"""Element-wise kernels: ReLU, dropout, and the fused Adam update.

NumPy evaluates ``dout * (x > 0)`` as three passes over memory with two temporary arrays
(the boolean mask, its conversion to float); each kernel here is one pass that reads its
inputs once and writes its output once. All work on flat (1-D, contiguous) arrays; the
layers reshape and split them over the worker threads (``parallel.run_chunks``).

Each jitted kernel has a plain-NumPy twin (``*_numpy``) with the same signature, written
for reading; the tests check that both agree.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def relu_forward(x, y):
    """y[i] = max(x[i], 0); returns ``y``."""
    for i in range(x.size):
        v = x[i]
        y[i] = v if v > 0 else 0
    return y


def relu_forward_numpy(x, y):
    """Readable twin of :func:`relu_forward`."""
    np.maximum(x, 0, out=y)
    return y


@njit(cache=True, nogil=True)
def relu_backward(dout, y, dx):
    """dx[i] = dout[i] if y[i] > 0 else 0, where y = relu(x) from the forward pass
    (y > 0 exactly where x > 0, so the output doubles as the mask); returns ``dx``."""
    for i in range(dout.size):
        dx[i] = dout[i] if y[i] > 0 else 0
    return dx


def relu_backward_numpy(dout, y, dx):
    """Readable twin of :func:`relu_backward`."""
    np.multiply(dout, y > 0, out=dx)
    return dx


@njit(cache=True, nogil=True)
def dropout_forward(x, u, keep, scale, m, y):
    """Inverted dropout from uniform draws ``u`` in [0, 1) (drawn by the caller's
    Generator): m[i] = scale if u[i] < keep else 0 (scale = 1/keep), y[i] = x[i] * m[i].
    Fills the mask ``m`` (kept for backward; it may be ``u`` itself) and ``y``; returns ``y``.
    """
    for i in range(x.size):
        mi = scale if u[i] < keep else 0
        m[i] = mi
        y[i] = x[i] * m[i]
    return y


def dropout_forward_numpy(x, u, keep, scale, m, y):
    """Readable twin of :func:`dropout_forward`."""
    m[...] = (u < keep) * scale
    np.multiply(x, m, out=y)
    return y


@njit(cache=True, nogil=True)
def multiply(a, b, out):
    """out[i] = a[i] * b[i]; returns ``out``."""
    for i in range(a.size):
        out[i] = a[i] * b[i]
    return out


def multiply_numpy(a, b, out):
    """Readable twin of :func:`multiply`."""
    np.multiply(a, b, out=out)
    return out


# error_model="numpy": a division by zero gives inf/nan as in NumPy instead of raising,
# which removes a test from the loop and lets LLVM vectorise it (measured 7x faster).
@njit(cache=True, nogil=True, error_model="numpy")
def adam_update(w, g, m, v, b1, c1, b2, c2, step_size, eps_hat, decay):
    """One Adam step for flat arrays, in one pass (see ``tinynet/optim.py`` for the math):

        w <- w * decay                       (decoupled weight decay; decay = 1 - lr*wd)
        m <- b1 m + c1 g                     (c1 = 1 - b1)
        v <- b2 v + c2 g^2                   (c2 = 1 - b2)
        w <- w - step_size * m / (sqrt(v) + eps_hat)

    with the bias corrections folded into ``step_size`` and ``eps_hat``. The scalars come
    in the arrays' dtype, so float32 parameters are updated in float32 arithmetic.
    """
    for i in range(w.size):
        gi = g[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        w[i] = w[i] * decay - step_size * mi / (np.sqrt(vi) + eps_hat)


def adam_update_numpy(w, g, m, v, b1, c1, b2, c2, step_size, eps_hat, decay):
    """Readable twin of :func:`adam_update`."""
    w *= decay
    m *= b1
    m += c1 * g
    v *= b2
    v += c2 * (g * g)
    w -= step_size * m / (np.sqrt(v) + eps_hat)
