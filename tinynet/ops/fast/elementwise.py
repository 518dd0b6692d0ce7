"""Element-wise kernels: ReLU, dropout, and the fused Adam update.

NumPy evaluates ``dout * (x > 0)`` as three passes over memory with two temporary arrays
(the boolean mask, its conversion to float); each kernel here is one pass that reads its
inputs once and writes its output once. All work on flat (1-D, contiguous) arrays; the
ops below reshape them and split them over the worker threads (``scheduler.map_flat``).
The readable versions are the ops of the same names in ``tinynet/ops/reference.py``.
"""

import math

import numpy as np
from numba import njit

from ..reference import SPLITMIX_M1, SPLITMIX_M2, SPLITMIX_STEP
from .scheduler import flat_chunk, map_flat, run_chunks


@njit(cache=True, nogil=True)
def relu_forward_kernel(x, y):
    """y[i] = max(x[i], 0); returns ``y``."""
    for i in range(x.size):
        v = x[i]
        y[i] = v if v > 0 else 0
    return y


@njit(cache=True, nogil=True)
def relu_backward_kernel(dout, y, dx):
    """dx[i] = dout[i] if y[i] > 0 else 0, where y = relu(x) from the forward pass
    (y > 0 exactly where x > 0, so the output doubles as the mask); returns ``dx``."""
    for i in range(dout.size):
        dx[i] = dout[i] if y[i] > 0 else 0
    return dx


@njit(cache=True, nogil=True)
def dropout_forward_kernel(x, key, start, keep, scale, m, y):
    """Inverted dropout with the reference's ``counter_uniform`` draws start, start + 1, ...
    computed here, one per entry: m[i] = scale if u < keep else 0 (scale = 1/keep),
    y[i] = x[i] * m[i]. Fills the mask ``m`` (kept for backward) and ``y``; returns ``y``.
    A slice needs only its ``start``, so threads fill slices side by side."""
    step, m1, m2 = SPLITMIX_STEP, SPLITMIX_M1, SPLITMIX_M2
    s30, s27, s31, s40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)
    one, unit = np.uint64(1), np.float32(2.0 ** -24)
    for i in range(x.size):
        z = key + (np.uint64(start + i) + one) * step
        z = (z ^ (z >> s30)) * m1
        z = (z ^ (z >> s27)) * m2
        z = z ^ (z >> s31)
        u = np.float32(z >> s40) * unit
        mi = scale if u < keep else 0
        m[i] = mi
        y[i] = x[i] * mi
    return y


@njit(cache=True, nogil=True)
def multiply(a, b, out):
    """out[i] = a[i] * b[i]; returns ``out``."""
    for i in range(a.size):
        out[i] = a[i] * b[i]
    return out


# error_model="numpy": a division by zero gives inf/nan as in NumPy instead of raising,
# which removes a test from the loop and lets LLVM vectorise it (measured 7x faster).
@njit(cache=True, nogil=True, error_model="numpy")
def adam_update_kernel(w, g, m, v, b1, c1, b2, c2, step_size, eps_hat, decay):
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


def relu_forward(x):
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    map_flat(relu_forward_kernel, x.size, x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(dout, y):
    dout = np.ascontiguousarray(dout)
    dx = np.empty_like(dout)
    map_flat(relu_backward_kernel, dout.size, dout.reshape(-1), y.reshape(-1), dx.reshape(-1))
    return dx


def dropout_forward(x, p, rng):
    x = np.ascontiguousarray(x)
    keep = 1.0 - p
    key = rng.integers(0, 2 ** 64, dtype=np.uint64)       # the reference's one draw
    m, y = np.empty_like(x), np.empty_like(x)
    xf, mf, yf = x.reshape(-1), m.reshape(-1), y.reshape(-1)
    keep32, scale = np.float32(keep), x.dtype.type(1.0 / keep)

    def part(s, e):
        dropout_forward_kernel(xf[s:e], key, s, keep32, scale, mf[s:e], yf[s:e])

    run_chunks(part, x.size, flat_chunk(x.size))
    return y, m


def dropout_backward(dout, m):
    dout = np.ascontiguousarray(dout)
    dx = np.empty_like(dout)
    map_flat(multiply, dout.size, dout.reshape(-1), m.reshape(-1), dx.reshape(-1))
    return dx


def adam_update(w, g, m, v, t, lr, b1, b2, eps, weight_decay=0.0):
    # sqrt(v_hat) + eps == (sqrt(v) + eps * sqrt(1 - b2^t)) / sqrt(1 - b2^t): folding the
    # bias corrections into two scalars saves two full-size temporaries per parameter.
    dt = w.dtype.type
    step_size = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    scalars = (dt(b1), dt(1 - b1), dt(b2), dt(1 - b2), dt(step_size),
               dt(eps * math.sqrt(1 - b2 ** t)), dt(1 - lr * weight_decay))
    g = np.ascontiguousarray(g, dtype=w.dtype).reshape(-1)
    if w.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous:
        map_flat(adam_update_kernel, w.size, w.reshape(-1), g, m.reshape(-1), v.reshape(-1),
                 *scalars)
    else:      # a strided parameter: the kernel's update, on NumPy views
        b1_, c1, b2_, c2, step, eps_hat, decay = scalars
        g = g.reshape(w.shape)
        w *= decay
        m *= b1_
        m += c1 * g
        v *= b2_
        v += c2 * (g * g)
        w -= step * m / (np.sqrt(v) + eps_hat)
