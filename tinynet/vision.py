"""Find the ink in a grey image and render one digit of it the way MNIST digits were made.

MNIST digits were made in a particular way, and a network trained on them only reads digits
made the same way: a white digit on a black background, values in [0, 1], the digit scaled
(keeping its aspect ratio) so that its longer side is 20 pixels, anti-aliased, and placed in a
28x28 image so that its centre of mass sits at the centre. A photo of a digit on paper, a scan
or a drawing in a paint program differs in every one of those points, so this module repeats
MNIST's recipe on any image. `tinynet.read` decides which ink is which digit in between.

Finding the ink (`find_ink`):

1. **Polarity**. Ink is what departs furthest from the paper colour, so if the darkest pixels
   depart further from the paper than the brightest, the writing is dark on light and the
   image is inverted. From here on ink is bright.
2. **Flatten the background**. Uneven light and shadows are slow changes in brightness. A
   morphological *opening* with a window wider than any pen stroke erases the strokes and keeps
   that slow background; subtracting it leaves the ink on a flat, black background.
3. **Threshold**. Otsu's method picks the level that best separates ink from background in
   the flattened image (never below a fraction of the brightest ink, so paper texture and JPEG
   noise stay out). An image whose ink is too faint is blank: "no digit found" (the darkest
   and brightest pixels are counted so that a short number on a whole page is not). The soft
   (grey) ink values are kept beside the binary mask, so edges stay anti-aliased as in MNIST.

Rendering one digit (`render_digit`):

4. **Crop, fix the stroke width, scale**. The digit is cropped to its bounding box and
   resampled to a working size. Thin pen strokes (a one-pixel paint-program pen) are
   thickened with a grey dilation toward MNIST's typical width (about 2.4 px once the digit
   is 20 px tall); very thick marker strokes are thinned a little. Then it is shrunk so the
   longer side is 20 px with area averaging (`INTER_AREA`), which anti-aliases like MNIST.
5. **Centre by mass**. The 20 px digit is pasted into a black 28x28 image shifted so that its
   centre of mass lands on pixel (14, 14).
"""

from __future__ import annotations

import cv2
import numpy as np

from .errors import ImageError

__all__ = ["find_ink", "render_digit", "shrink", "stroke_width", "turn"]

MNIST_SIZE = 28          # side of the output image
MNIST_BOX = 20           # the longer side of the digit inside it
WORK_SIZE = 80           # the digit's longer side while its strokes are measured and fixed
STROKE_TARGET = 2.4      # MNIST's median stroke width, in pixels of the 20 px digit
STROKE_THIN = 1.8        # thinner than this gets thickened to STROKE_TARGET
STROKE_THICK = 4.0       # thicker than this gets thinned to STROKE_THICK_TARGET
STROKE_THICK_TARGET = 3.2
MIN_CONTRAST = 0.08      # ink fainter than this (on a 0..1 scale) is not ink
PEAK_PIXELS = 16         # ink may be as few pixels as this on a large page (_extremes)


# --------------------------------------------------------------------------------------------
# 1-3. Finding the ink
# --------------------------------------------------------------------------------------------

def shrink(gray: np.ndarray, side: int) -> np.ndarray:
    """Downscale (area averaging) so neither side exceeds `side`; smaller images are kept."""
    height, width = gray.shape
    scale = side / max(height, width)
    if scale >= 1:
        return gray
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def quantiles(values: np.ndarray, *qs: float, low: float = 0.0, high: float = 1.0) -> list[float]:
    """The values at fractions `qs` of the sorted `values`, which lie in [low, high], read off
    a 1024-bin histogram: to within 0.1% of the range, and several times cheaper than
    np.percentile on the images read here."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1, 1)
    bins = 1024
    hist = cv2.calcHist([flat], [0], None, [bins], [low, high + 1e-6]).ravel()
    cumulative = np.cumsum(hist)
    total = cumulative[-1]
    step = (high - low) / bins
    return [low + step * (int(np.searchsorted(cumulative, q * total, side="left")) + 0.5)
            for q in qs]


def find_ink(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(soft ink in [0, 1] on a black background, binary ink mask as uint8), same size.

    `gray` is a 2-D float32 image in [0, 1] (as `imagefile.to_gray` makes it), of either
    polarity. Raises ImageError "no digit found" when nothing stands out from the background.
    """
    gray = _only_the_page(gray)
    paper = _flat_paper(gray)
    if paper is not None:      # uniform background: subtract it, no flattening needed
        if _ink_is_dark(gray, paper):
            gray, paper = 1 - gray, 1 - paper
        ink = np.clip(gray - paper, 0, 1)
    else:                      # photos and scans: flatten light gradients and shadows
        dark = _ink_is_dark(gray, _coarse_background(gray))
        ink = _flatten_background(1 - gray if dark else gray, relative=dark)
    peak = _extremes(ink)[1] if ink.size > 500 else float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageError("no digit found (the image is blank or has no contrast)")
    as_bytes = np.round(ink * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(as_bytes, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = max(otsu / 255.0, 0.3 * peak, MIN_CONTRAST)
    mask = _add_faint_writing((ink > level).astype(np.uint8), ink, level)
    return _normalise_ink(ink, mask, level), mask


def _add_faint_writing(mask: np.ndarray, ink: np.ndarray, level: float) -> np.ndarray:
    """Add the digits written fainter than the rest (a thin pen beside a marker, pencil).

    One threshold for the whole image is set by its boldest writing, so a faint digit can
    fall below it entirely, or leave only fragments above it. Ink above half that level is
    taken instead wherever it forms a piece of the writing's size of which the threshold
    kept less than half; bold strokes, kept whole by the threshold, do not grow.
    """
    low = (ink > max(0.5 * level, MIN_CONTRAST)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(low, connectivity=8)
    if count <= 2:
        return mask
    kept = np.bincount(labels[mask > 0], minlength=count)
    areas, heights = stats[:, cv2.CC_STAT_AREA], stats[:, cv2.CC_STAT_HEIGHT]
    bold = (kept >= 0.5 * areas) & (np.arange(count) > 0)
    if not bold.any():
        return mask
    big = bold & (areas >= 0.05 * areas[bold].max())
    tall, typical_area = float(np.median(heights[big])), float(np.median(areas[big]))
    faint = np.flatnonzero(~bold & (heights >= 0.5 * tall) & (areas >= 0.2 * typical_area))
    faint = faint[faint > 0]
    if faint.size == 0:
        return mask
    return mask | np.isin(labels, faint).astype(np.uint8)


def _only_the_page(gray: np.ndarray) -> np.ndarray:
    """A photo of a sheet lying on something darker (a table, a lap) with the surroundings
    painted the sheet's colour, so that the sheet is the background and its writing the ink.
    Any other image is returned as it is.

    The sheet is the largest bright region (Otsu's threshold): it must cover a fifth of the
    image, fill most of its bounding box (a sheet is a quadrilateral; a bright digit is not),
    leave the surface showing on three sides of the image at least (a shadow falling across
    a sheet leaves it touching three or four), and be clearly brighter than the surface.
    """
    if min(gray.shape) < 16:
        return gray
    ring = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if float(np.median(ring)) > float(gray.mean()) - 0.2:
        return gray        # the image's edge is not darker than its middle: no surface there
    as_bytes = np.round(gray * 255).astype(np.uint8)
    level, bright = cv2.threshold(as_bytes, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    if count < 2:
        return gray
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[largest])
    if area < 0.2 * gray.size or area < 0.7 * w * h:
        return gray
    contours, _ = cv2.findContours((labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    sheet = np.zeros(gray.shape, np.uint8)
    cv2.drawContours(sheet, contours, -1, 1, thickness=cv2.FILLED)   # writing included
    sheet = cv2.erode(sheet, np.ones((5, 5), np.uint8))               # not the sheet's edge
    outside = sheet == 0
    if outside.mean() < 0.1 or not sheet.any():
        return gray
    # the surface shows on three sides at least; a shadow across a sheet darkens one or two
    sides = (sheet[2], sheet[-3], sheet[:, 2], sheet[:, -3])
    if sum(side.mean() < 0.1 for side in sides) < 3:
        return gray
    paper, surface = float(np.median(gray[sheet > 0])), float(np.median(gray[outside]))
    if paper - surface < 0.25 or surface > 0.6 * paper:
        return gray
    out = gray.copy()
    out[outside] = paper
    return out


def _coarse_background(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness everywhere: a wide median filter on a small copy, scaled back.

    A median ignores ink of either polarity as long as ink covers under half of the window,
    and a window of 0.6 x the image side is wide enough for that in any digit image.
    """
    height, width = gray.shape
    scale = min(1.0, 96 / max(height, width))
    small = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    size = max(3, int(0.6 * max(small.shape)) | 1)
    as_bytes = np.round(small * 255).astype(np.uint8)
    median = cv2.medianBlur(as_bytes, size).astype(np.float32) / 255
    return cv2.resize(median, (width, height), interpolation=cv2.INTER_LINEAR)


def _flat_paper(gray: np.ndarray) -> float | None:
    """The background level if the image border is uniform (a digital drawing), else None."""
    ring = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    low, high = quantiles(ring, 0.05, 0.95)
    return float(np.median(ring)) if high - low < 0.1 else None


def _extremes(values: np.ndarray, low: float = 0.0) -> tuple[float, float]:
    """(darkest, brightest) of `values` (in [low, 1]) as far as ink goes: the values 0.2% in
    from either end, or PEAK_PIXELS pixels in when neither of those stands out from the
    paper by MIN_CONTRAST (a short number on a whole scanned page covers far less than 0.2%
    of it)."""
    darkest, brightest = quantiles(values, 0.002, 0.998, low=low)
    if max(-darkest, brightest) < MIN_CONTRAST and values.size > PEAK_PIXELS / 0.002:
        share = PEAK_PIXELS / values.size
        darkest, brightest = quantiles(values, share, 1 - share, low=low)
    return darkest, brightest


def _ink_is_dark(gray: np.ndarray, paper) -> bool:
    """Is the ink darker than the paper? Ink is what departs furthest from the paper colour,
    so compare how far the darkest and the brightest pixels depart from the background."""
    darkest, brightest = _extremes(gray - paper, low=-1.0)
    return bool(-darkest > brightest)


def _flatten_background(ink: np.ndarray, relative: bool) -> np.ndarray:
    """Remove the slowly varying background (light gradients, shadows) estimated by opening.

    An opening (minimum filter, then maximum filter) with a window wider than any stroke
    removes the bright strokes and keeps everything broader, including the sharp edge of a
    shadow, which a blur would smear. For dark ink on paper (`relative`, `ink` = 1 - photo)
    light multiplies the paper's reflectance, so the ink's depth is divided by the local
    paper brightness: a stroke in the shadow counts as much as one in full light.
    """
    height, width = ink.shape
    if max(height, width) > 100:   # photos: tame paper texture and sensor noise first
        ink = cv2.GaussianBlur(ink, (0, 0), 1.0)
    size = max(7, max(height, width) // 4) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    background = cv2.morphologyEx(ink, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
    smooth = max(3, size // 8) | 1
    background = cv2.blur(background, (smooth, smooth), borderType=cv2.BORDER_REPLICATE)
    depth = ink - np.minimum(background, ink)
    if relative:
        depth = depth / np.maximum(1 - background, 0.05)
    return np.clip(depth, 0, 1).astype(np.float32)


def _normalise_ink(ink: np.ndarray, mask: np.ndarray, level: float) -> np.ndarray:
    """Stretch so the ink's core is 1 and the background noise floor is 0."""
    near = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0
    far = ink[~near]
    floor = min(2.0 * quantiles(far, 0.95)[0], 0.5 * level) if far.size else 0.0
    top = quantiles(ink[mask > 0], 0.9)[0] if mask.any() else 1.0
    return np.clip((ink - floor) / max(top - floor, 1e-6), 0, 1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# 4-5. Rendering one digit MNIST-style
# --------------------------------------------------------------------------------------------

def _crop(ink: np.ndarray) -> np.ndarray:
    """Crop to the bounding box of the nonzero pixels."""
    ys, xs = np.nonzero(ink > 0.02)
    if ys.size == 0:
        raise ImageError("no digit found")
    return ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _resize_longer_side(ink: np.ndarray, side: int) -> np.ndarray:
    """Resize keeping the aspect ratio; area averaging when shrinking, linear when growing."""
    height, width = ink.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(ink, size, interpolation=method)


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: 2 x area / perimeter of the ink above half its peak."""
    mask = (ink > 0.5 * max(float(ink.max()), 1e-6)).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(mask.sum()) / max(perimeter, 1.0)


def _fix_stroke_width(work: np.ndarray) -> np.ndarray:
    """Grey-dilate thin strokes (grey-erode very thick ones) toward MNIST's stroke width."""
    per_output_pixel = WORK_SIZE / MNIST_BOX
    width = stroke_width(work) / per_output_pixel
    if width < STROKE_THIN:
        grow = round((STROKE_TARGET - width) * per_output_pixel)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow + 1, grow + 1))
        padded = cv2.copyMakeBorder(work, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0)
        return _crop(cv2.dilate(padded, kernel))
    if width > STROKE_THICK:
        shrink = round((width - STROKE_THICK_TARGET) * per_output_pixel)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (shrink + 1, shrink + 1))
        thinner = cv2.erode(work, kernel)
        return _crop(thinner) if thinner.max() > 0.5 else work
    return work


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste into 28x28 so the centre of mass lands on pixel (14, 14), keeping it all inside.

    Pixel indices are the coordinates (as in MNIST, whose digits average a centre of mass of
    row 14.0, column 14.0). The shift is a whole number of pixels, so nothing is resampled.
    """
    height, width = digit.shape
    total = float(digit.sum())
    row_mass = float((digit.sum(axis=1) * np.arange(height)).sum()) / total
    col_mass = float((digit.sum(axis=0) * np.arange(width)).sum()) / total
    centre = MNIST_SIZE // 2
    top = int(np.clip(round(centre - row_mass), 0, MNIST_SIZE - height))
    left = int(np.clip(round(centre - col_mass), 0, MNIST_SIZE - width))
    out = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    out[top:top + height, left:left + width] = digit
    return out


def turn(image: np.ndarray, degrees: float, interpolation: int = cv2.INTER_LINEAR
         ) -> tuple[np.ndarray, np.ndarray]:
    """(the image turned `degrees` counter-clockwise about its centre, on a zero canvas that
    holds all of it; the 2x3 affine map from the turned image back to this one)."""
    height, width = image.shape
    c, s = abs(np.cos(np.radians(degrees))), abs(np.sin(np.radians(degrees)))
    size = (int(width * c + height * s) + 2, int(height * c + width * s) + 2)
    forward = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    forward[:, 2] += ((size[0] - width) / 2, (size[1] - height) / 2)
    turned = cv2.warpAffine(image, forward, size, flags=interpolation)
    return turned, cv2.invertAffineTransform(forward)


def render_digit(ink: np.ndarray) -> np.ndarray:
    """Soft ink of one digit (black background) -> MNIST-style 28x28 float32 in [0, 1]."""
    work = _resize_longer_side(_crop(ink), WORK_SIZE)
    work = _fix_stroke_width(work)
    digit = _resize_longer_side(work, MNIST_BOX)
    peak = float(digit.max())
    if peak <= 0:
        raise ImageError("no digit found")
    digit = np.clip(digit / peak, 0, 1).astype(np.float32)
    return _centre_by_mass(digit)
