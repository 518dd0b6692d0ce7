"""Augmentation warps, fast: the bilinear resampling and the separable blur of
``tinynet/augment.py`` as Numba loops over pixels. Same signatures and results as
``warp_bilinear`` and ``blur_planes`` in ``tinynet/ops/reference.py``, which state the math.
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
