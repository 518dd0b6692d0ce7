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
handed to the jitted kernels, so a seed reproduces a batch exactly. Each jitted kernel has
a plain-NumPy twin (``*_numpy``) with the same signature.
"""

import math

import numpy as np
from numba import njit


@njit(cache=True)
def warp_bilinear(images, theta, flow, out):
    """Resample ``images`` (N, H, W) into ``out`` (N, H, W) through the affine maps
    ``theta`` (N, 2, 3) plus the displacement ``flow`` (N, 2, H, W), or no displacement
    if ``flow`` has length 0 along its first axis. Returns ``out``."""
    N, H, W = images.shape
    cy = (H - 1) * 0.5
    cx = (W - 1) * 0.5
    use_flow = flow.shape[0] > 0
    for n in range(N):
        img = images[n]
        a00, a01, a02 = theta[n, 0, 0], theta[n, 0, 1], theta[n, 0, 2]
        a10, a11, a12 = theta[n, 1, 0], theta[n, 1, 1], theta[n, 1, 2]
        for y in range(H):
            v = y - cy
            for x in range(W):
                u = x - cx
                xs = a00 * u + a01 * v + a02 + cx
                ys = a10 * u + a11 * v + a12 + cy
                if use_flow:
                    xs += flow[n, 0, y, x]
                    ys += flow[n, 1, y, x]
                x0 = math.floor(xs)
                y0 = math.floor(ys)
                fx = xs - x0
                fy = ys - y0
                xi = int(x0)
                yi = int(y0)
                acc = 0.0
                if yi >= 0 and yi < H:
                    if xi >= 0 and xi < W:
                        acc += (1 - fy) * (1 - fx) * img[yi, xi]
                    if xi + 1 >= 0 and xi + 1 < W:
                        acc += (1 - fy) * fx * img[yi, xi + 1]
                if yi + 1 >= 0 and yi + 1 < H:
                    if xi >= 0 and xi < W:
                        acc += fy * (1 - fx) * img[yi + 1, xi]
                    if xi + 1 >= 0 and xi + 1 < W:
                        acc += fy * fx * img[yi + 1, xi + 1]
                out[n, y, x] = min(max(acc, 0.0), 1.0)
    return out


def warp_bilinear_numpy(images, theta, flow, out):
    """Readable twin of :func:`warp_bilinear`, vectorised over all pixels at once."""
    N, H, W = images.shape
    cy, cx = (H - 1) / 2, (W - 1) / 2
    y, x = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    u, v = x - cx, y - cy                                            # (H, W)
    t = theta.astype(np.float64)[:, :, :, None, None]                # (N, 2, 3, 1, 1)
    xs = t[:, 0, 0] * u + t[:, 0, 1] * v + t[:, 0, 2] + cx           # (N, H, W)
    ys = t[:, 1, 0] * u + t[:, 1, 1] * v + t[:, 1, 2] + cy
    if flow.shape[0] > 0:
        xs = xs + flow[:, 0]
        ys = ys + flow[:, 1]
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = xs - x0, ys - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    n = np.arange(N)[:, None, None]

    def pixel(yy, xx):
        """Input value at integer (yy, xx), 0 outside the image."""
        inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        return np.where(inside, images[n, yy.clip(0, H - 1), xx.clip(0, W - 1)], 0.0)

    acc = ((1 - fy) * (1 - fx) * pixel(y0, x0) + (1 - fy) * fx * pixel(y0, x0 + 1)
           + fy * (1 - fx) * pixel(y0 + 1, x0) + fy * fx * pixel(y0 + 1, x0 + 1))
    out[...] = np.clip(acc, 0.0, 1.0)
    return out


@njit(cache=True)
def blur_planes(planes, taps, out):
    """Separable blur of each plane of ``planes`` (M, H, W) with the odd-length 1-D
    kernel ``taps``, first along rows then along columns; borders repeat the edge pixel.
    Writes ``out`` (M, H, W) and returns it."""
    M, H, W = planes.shape
    r = taps.shape[0] // 2
    tmp = np.empty((H, W), dtype=planes.dtype)
    for m in range(M):
        for y in range(H):
            for x in range(W):
                s = 0.0
                for k in range(-r, r + 1):
                    xx = min(max(x + k, 0), W - 1)
                    s += taps[k + r] * planes[m, y, xx]
                tmp[y, x] = s
        for y in range(H):
            for x in range(W):
                s = 0.0
                for k in range(-r, r + 1):
                    yy = min(max(y + k, 0), H - 1)
                    s += taps[k + r] * tmp[yy, x]
                out[m, y, x] = s
    return out


def blur_planes_numpy(planes, taps, out):
    """Readable twin of :func:`blur_planes`: pad by edge repetition, then sum shifted
    copies weighted by the taps, along x then along y."""
    M, H, W = planes.shape
    r = len(taps) // 2
    p = np.pad(planes, ((0, 0), (0, 0), (r, r)), mode="edge")
    tmp = sum(taps[k] * p[:, :, k:k + W] for k in range(len(taps)))
    p = np.pad(tmp, ((0, 0), (r, r), (0, 0)), mode="edge")
    out[...] = sum(taps[k] * p[:, k:k + H, :] for k in range(len(taps)))
    return out


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
    smooth = blur_planes(noise, gaussian_taps(sigma), np.empty_like(noise))
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
    warp_bilinear(images, theta, flow, out)
    return out.reshape(shape)
