"""Training-time data augmentation: random affine warps (shift, rotation, scale) and
optional elastic distortion of (N, H, W) image batches, with bilinear sampling.

Every output pixel is *pulled* from the input ("inverse mapping"), so there are no holes.
Coordinates are (row, col) = (y, x) measured from the image centre
(cy, cx) = ((H - 1) / 2, (W - 1) / 2). For output pixel (y, x) of image n, with
u = x - cx, v = y - cy and theta = theta[n] (2 x 3)::

    xs = theta[0, 0] * u + theta[0, 1] * v + theta[0, 2] + cx + flow[n, 0, y, x]
    ys = theta[1, 0] * u + theta[1, 1] * v + theta[1, 2] + cy + flow[n, 1, y, x]

and the output is the input sampled at (ys, xs) by bilinear interpolation: with
x0 = floor(xs), fx = xs - x0 (same for y)::

    out = (1-fy)(1-fx) in[y0, x0] + (1-fy) fx in[y0, x0+1]
        + fy (1-fx) in[y0+1, x0] + fy fx in[y0+1, x0+1]

Pixels outside the input count as 0 (black background, MNIST convention), and the result
is clipped to [0, 1] to remove rounding overshoot. theta = [[1, 0, 0], [0, 1, 0]] with zero
flow reproduces the input exactly (fx = fy = 0).

To rotate the digit by angle a, scale it by s and move it by (dx, dy) pixels, the output
pixel must read from the input at R(-a) (p - d) / s, so theta = [R(-a) / s | -R(-a) d / s]:
see :func:`random_affine`. Elastic distortion (Simard et al., 2003) adds a smooth random
displacement field: uniform noise in [-1, 1] per pixel and axis, blurred by a Gaussian of
width sigma (the blur makes neighbouring pixels move together), times alpha.

The random numbers are drawn with NumPy from a passed ``numpy.random.Generator`` and
handed to the ops ``warp_bilinear`` and ``blur_planes`` (``tinynet/ops``: reference or fast),
so a seed reproduces a batch exactly.
"""

import math

import numpy as np

from . import ops


def gaussian_taps(sigma, dtype=np.float32):
    """Normalised 1-D Gaussian kernel with radius ceil(3 sigma)."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return (k / k.sum()).astype(dtype)


def random_affine(rng, n, max_shift=2.0, max_rotation=10.0, scale=(0.9, 1.1)):
    """Draw n inverse affine maps (n, 2, 3) float32 for :func:`warp_bilinear`.

    Shift (dx, dy) ~ U(-max_shift, max_shift) pixels, angle ~ U(-max_rotation, max_rotation)
    degrees, zoom s ~ U(scale[0], scale[1]) (one factor for both axes).
    """
    dx, dy = rng.uniform(-max_shift, max_shift, size=(2, n))
    a = np.deg2rad(rng.uniform(-max_rotation, max_rotation, size=n))
    s = rng.uniform(scale[0], scale[1], size=n)
    cos, sin = np.cos(a) / s, np.sin(a) / s
    theta = np.empty((n, 2, 3))
    # inverse of "rotate by a, scale by s": R(-a) / s = [[cos, sin], [-sin, cos]] / s
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin
    theta[:, 1, 0], theta[:, 1, 1] = -sin, cos
    theta[:, 0, 2] = -(cos * dx + sin * dy)
    theta[:, 1, 2] = -(-sin * dx + cos * dy)
    return theta.astype(np.float32)


def elastic_flow(rng, n, shape, alpha=8.0, sigma=3.0):
    """Smooth random displacement fields (n, 2, H, W) float32, in pixels."""
    H, W = shape
    noise = rng.uniform(-1, 1, size=(2 * n, H, W)).astype(np.float32)
    smooth = ops.blur_planes(noise, gaussian_taps(sigma), np.empty_like(noise))
    return (smooth * np.float32(alpha)).reshape(n, 2, H, W)


def augment(images, rng, max_shift=2.0, max_rotation=10.0, scale=(0.9, 1.1),
            elastic_alpha=0.0, elastic_sigma=3.0):
    """Randomly warp a batch of images in [0, 1]: (N, H, W) or (N, 1, H, W), any float
    dtype (computed in float32). Returns a new float32 array of the same shape.

    ``elastic_alpha`` = 0 (default) turns elastic distortion off; try 8-34 with sigma 3-6.
    The draws depend only on ``rng`` and N, so a seeded generator reproduces the batch.
    """
    images = np.asarray(images)
    shape = images.shape
    if images.ndim == 4 and shape[1] == 1:
        images = images.reshape(shape[0], shape[2], shape[3])
    if images.ndim != 3:
        raise ValueError(f"augment expects (N, H, W) or (N, 1, H, W) images, got {shape}")
    images = np.ascontiguousarray(images, dtype=np.float32)
    n = images.shape[0]
    theta = random_affine(rng, n, max_shift, max_rotation, scale)
    if elastic_alpha > 0:
        flow = elastic_flow(rng, n, images.shape[1:], elastic_alpha, elastic_sigma)
    else:
        flow = np.zeros((0, 2, 1, 1), dtype=np.float32)
    out = np.empty_like(images)
    ops.warp_bilinear(images, theta, flow, out)
    return out.reshape(shape)
