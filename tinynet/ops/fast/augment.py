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


@njit(cache=True)
def pen_width(images, amount, out):
    """Thicker (amount > 0, toward the 3x3 maximum) or thinner (amount < 0, toward the
    minimum of the 5-pixel cross) strokes, per image; pixels outside count as 0."""
    N, H, W = images.shape
    for n in range(N):
        a = amount[n]
        for y in range(H):
            for x in range(W):
                v = images[n, y, x]
                if a >= 0:
                    t = 0.0
                    for yy in range(max(y - 1, 0), min(y + 2, H)):
                        for xx in range(max(x - 1, 0), min(x + 2, W)):
                            t = max(t, images[n, yy, xx])
                    out[n, y, x] = v + a * (t - v)
                else:
                    t = v
                    if y == 0 or y == H - 1 or x == 0 or x == W - 1:
                        t = 0.0
                    else:
                        t = min(t, images[n, y - 1, x], images[n, y + 1, x],
                                images[n, y, x - 1], images[n, y, x + 1])
                    out[n, y, x] = v - a * (t - v)
    return out


@njit(cache=True)
def break_strokes(images, picks, radius, out):
    """Zero a disc of ``radius`` around the chosen ink pixels: pick u >= 0 chooses ink pixel
    floor(u * count) in row-major order (ink: brighter than 0.5 in the input)."""
    N, H, W = images.shape
    G = picks.shape[1]
    r = int(math.floor(radius))
    out[...] = images
    for n in range(N):
        count = 0
        for y in range(H):
            for x in range(W):
                if images[n, y, x] > 0.5:
                    count += 1
        for g in range(G):
            u = picks[n, g]
            if u < 0 or count == 0:
                continue
            k = min(int(u * count), count - 1)
            cy = -1
            cx = -1
            seen = 0
            for y in range(H):
                for x in range(W):
                    if images[n, y, x] > 0.5:
                        if seen == k:
                            cy = y
                            cx = x
                        seen += 1
            for y in range(max(cy - r, 0), min(cy + r + 1, H)):
                for x in range(max(cx - r, 0), min(cx + r + 1, W)):
                    if (y - cy) * (y - cy) + (x - cx) * (x - cx) <= radius * radius:
                        out[n, y, x] = 0.0
    return out


@njit(cache=True)
def thin(masks, out):
    """Zhang-Suen thinning of binary images (N, H, W) to one-pixel-wide lines, image by
    image; the reference function states the rule. Returns ``out`` (0 or 1)."""
    N, H, W = masks.shape
    dy = np.array([-1, -1, 0, 1, 1, 1, 0, -1])      # p2 .. p9, clockwise from above
    dx = np.array([0, 1, 1, 1, 0, -1, -1, -1])
    gone = np.empty(H * W, np.int64)
    ring = np.empty(8, np.int64)
    for n in range(N):
        img = out[n]
        for y in range(H):
            for x in range(W):
                img[y, x] = 1 if masks[n, y, x] != 0 else 0
        removed = True
        while removed:
            removed = False
            for first in (True, False):
                count = 0
                for y in range(H):
                    for x in range(W):
                        if img[y, x] == 0:
                            continue
                        b = 0
                        for k in range(8):
                            yy, xx = y + dy[k], x + dx[k]
                            v = 0
                            if 0 <= yy < H and 0 <= xx < W:
                                v = img[yy, xx]
                            ring[k] = v
                            b += v
                        if b < 2 or b > 6:
                            continue
                        a = 0
                        for k in range(8):
                            if ring[k] == 0 and ring[(k + 1) % 8] == 1:
                                a += 1
                        if a != 1:
                            continue
                        p2, p4, p6, p8 = ring[0], ring[2], ring[4], ring[6]
                        if first:
                            edge = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
                        else:
                            edge = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
                        if edge:
                            gone[count] = y * W + x
                            count += 1
                for i in range(count):      # removed together: decided on the same image
                    img[gone[i] // W, gone[i] % W] = 0
                if count > 0:
                    removed = True
    return out
