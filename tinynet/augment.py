"""Training-time data augmentation of (N, H, W) image batches: the pen's width, broken
strokes, random affine warps (shift, rotation, scale, slant, aspect) and optional elastic
distortion, with bilinear sampling. (Two slower changes, made once per training set rather
than per batch, re-make digits the way the reader sees users' digits: `redraw_with_pen`
and `rerender`.)

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

import cv2
import numpy as np

from . import ops
from .errors import ImageError
from .vision import render_digit


def gaussian_taps(sigma, dtype=np.float32):
    """Normalised 1-D Gaussian kernel with radius ceil(3 sigma)."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return (k / k.sum()).astype(dtype)


def random_affine(rng, n, max_shift=2.0, max_rotation=10.0, scale=(0.9, 1.1), max_shear=0.0,
                  aspect=(1.0, 1.0)):
    """Draw n inverse affine maps (n, 2, 3) float32 for :func:`warp_bilinear`.

    Shift (dx, dy) ~ U(-max_shift, max_shift) pixels, angle a ~ U(-max_rotation,
    max_rotation) degrees, zoom s ~ U(scale[0], scale[1]), slant k ~ U(-max_shear, max_shear)
    (x moves by k * y, as handwriting leans) and width-to-height ratio r ~ U(aspect[0],
    aspect[1]). The forward map is A = R(a) [[1, k], [0, 1]] diag(s sqrt(r), s / sqrt(r))
    followed by the shift d, so each output pixel p reads the input at A^-1 (p - d):
    theta = [A^-1 | -A^-1 d]. (k and r are drawn only when asked for, so recipes without them
    see the same random stream as before they existed.)
    """
    dx, dy = rng.uniform(-max_shift, max_shift, size=(2, n))
    a = np.deg2rad(rng.uniform(-max_rotation, max_rotation, size=n))
    s = rng.uniform(scale[0], scale[1], size=n)
    k, r = np.zeros(n), np.ones(n)
    if max_shear > 0 or tuple(aspect) != (1.0, 1.0):
        k = rng.uniform(-max_shear, max_shear, size=n)
        r = np.sqrt(rng.uniform(aspect[0], aspect[1], size=n))
    # A^-1 = diag(1 / (s r), r / s) [[1, -k], [0, 1]] R(-a), written out
    cos, sin = np.cos(a), np.sin(a)
    sx, sy = s * r, s / r
    inverse = np.empty((n, 2, 2))
    inverse[:, 0, 0] = (cos + k * sin) / sx
    inverse[:, 0, 1] = (sin - k * cos) / sx
    inverse[:, 1, 0] = -sin / sy
    inverse[:, 1, 1] = cos / sy
    theta = np.empty((n, 2, 3))
    theta[:, :, :2] = inverse
    theta[:, :, 2] = -(inverse @ np.stack([dx, dy], -1)[:, :, None])[:, :, 0]
    return theta.astype(np.float32)


def elastic_flow(rng, n, shape, alpha=8.0, sigma=3.0):
    """Smooth random displacement fields (n, 2, H, W) float32, in pixels."""
    H, W = shape
    noise = rng.uniform(-1, 1, size=(2 * n, H, W)).astype(np.float32)
    smooth = ops.blur_planes(noise, gaussian_taps(sigma), np.empty_like(noise))
    return (smooth * np.float32(alpha)).reshape(n, 2, H, W)


def redraw_with_pen(images, rng, radius=(0.5, 3.0), upscale=2):
    """Each image (N, H, W) in [0, 1] re-drawn along its own path with a round pen, then
    brought to MNIST's style as the reader brings a glyph (``tinynet.vision.render_digit``).

    MNIST's digits are scans: soft edges, a width that swells and thins along the stroke.
    Digits people write with a pen and give to the reader are rendered from ink of one even
    width. A network trained only on scans can tell the two apart, and one trained with
    "not a digit" glyphs drawn with an even pen (``tinynet.negatives``) learns that an even
    pen means "not a digit". Redrawing some training digits the same way takes that cue away.

    How: enlarge ``upscale`` times (bilinear), keep the ink above 0.5, thin it to the pen's
    path (``ops.thin``), and lay a pen of radius r ~ U(radius) (enlarged pixels) along the
    path, anti-aliased: coverage = clip(r + 0.5 - distance to the path, 0, 1). An image with
    no ink above 0.5 is returned unchanged. Returns a new float32 array.
    """
    images = np.asarray(images, dtype=np.float32)
    n, height, width = images.shape
    big = np.stack([cv2.resize(image, (width * upscale, height * upscale),
                               interpolation=cv2.INTER_LINEAR) for image in images])
    paths = ops.thin((big > 0.5).astype(np.uint8), np.empty(big.shape, np.uint8))
    radii = rng.uniform(radius[0], radius[1], size=n)
    out = images.copy()
    for i in range(n):
        if paths[i].any():
            distance = cv2.distanceTransform(1 - paths[i], cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            out[i] = _rendered(np.clip(radii[i] + 0.5 - distance, 0, 1), images[i])
    return out


def rerender(images, rng, sides=(28, 112)):
    """Each image (N, H, W) in [0, 1] enlarged to a random height in ``sides`` (pixels, as
    the digits in users' files come) and brought back as the reader brings a glyph
    (``tinynet.vision.render_digit``: crop, stroke width, 20x20 box, centre of mass), so the
    network trains on the images it will be given, not only on MNIST's own 28x28 rendering.
    An image with no ink is returned unchanged. Returns a new float32 array."""
    images = np.asarray(images, dtype=np.float32)
    out = np.empty_like(images)
    for i, side in enumerate(rng.integers(sides[0], sides[1] + 1, size=len(images))):
        size = (int(side), int(side))
        out[i] = _rendered(cv2.resize(images[i], size, interpolation=cv2.INTER_LINEAR), images[i])
    return out


def _rendered(ink, original):
    """``render_digit(ink)``, or the original image when the ink is too faint to render."""
    try:
        return render_digit(ink)
    except ImageError:
        return original


def augment(images, rng, max_shift=2.0, max_rotation=10.0, scale=(0.9, 1.1),
            elastic_alpha=0.0, elastic_sigma=3.0, max_shear=0.0, aspect=(1.0, 1.0),
            pen=(0.0, 0.0), gaps=0.0, gap_radius=1.2):
    """Randomly change a batch of images in [0, 1]: (N, H, W) or (N, 1, H, W), any float
    dtype (computed in float32). Returns a new float32 array of the same shape.

    In order: the pen's width (``pen = (low, high)``: an amount ~ U(low, high) per image for
    ``ops.pen_width``, negative thinner, positive thicker; (0, 0) leaves it), broken strokes
    (each image gets a gap of ``gap_radius`` pixels with probability ``gaps``, and a second
    one with probability ``gaps`` squared: ``ops.break_strokes``), then the warp: shift,
    rotation, zoom, slant (``max_shear``), width-to-height ratio (``aspect``) and, with
    ``elastic_alpha`` > 0, elastic wobble (try 8-34 with sigma 3-6).
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
    if tuple(pen) != (0.0, 0.0):
        amount = rng.uniform(pen[0], pen[1], size=n).astype(np.float32)
        images = ops.pen_width(images, amount, np.empty_like(images))
    if gaps > 0:
        u = rng.random((n, 2))
        keep = rng.random((n, 2)) < np.array([gaps, gaps * gaps])
        picks = np.where(keep, u, -1.0).astype(np.float32)
        images = ops.break_strokes(images, picks, np.float32(gap_radius), np.empty_like(images))
    theta = random_affine(rng, n, max_shift, max_rotation, scale, max_shear, aspect)
    if elastic_alpha > 0:
        flow = elastic_flow(rng, n, images.shape[1:], elastic_alpha, elastic_sigma)
    else:
        flow = np.zeros((0, 2, 1, 1), dtype=np.float32)
    out = np.empty_like(images)
    ops.warp_bilinear(images, theta, flow, out)
    return out.reshape(shape)
