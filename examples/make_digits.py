"""Draw the project's own test images of handwritten digits into digits/.

Every digit class has a pen-stroke skeleton: a few polylines and elliptic arcs in a unit box
(x to the right, y downwards). Each image jitters the skeleton (slant, rotation, aspect,
wobble of every point), then draws it with OpenCV lines of a chosen pen width in one of
several styles: paint-program drawings at 28x28, thick markers, transparent canvas exports,
coloured ink, and "photos" of paper with texture, uneven light, a shadow, noise and JPEG
compression. Numbers are several digits drawn side by side. The label is in the file name:
``7_thin_white-bg.png`` is a 7, ``number_2025.png`` is the number 2025.

Seeded, so running it again reproduces the same images:

    python examples/make_digits.py [--out digits] [--seed 2025]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

# The pen-stroke building blocks the library draws its "not a digit" glyphs with.
from tinynet.negatives import arc, line

ROOT = Path(__file__).resolve().parent.parent


# Each digit is a list of strokes; each stroke is an (n, 2) array of points in the unit box.
SKELETONS = {
    0: [arc(0.5, 0.5, 0.3, 0.45, -90, 275)],
    1: [line((0.42, 0.18), (0.56, 0.04), (0.5, 0.96))],
    2: [np.concatenate([arc(0.5, 0.3, 0.27, 0.25, 190, 400),
                        line((0.25, 0.95), (0.82, 0.93))])],
    3: [np.concatenate([arc(0.48, 0.27, 0.26, 0.22, 200, 450),
                        arc(0.48, 0.72, 0.3, 0.24, -90, 160)])],
    4: [line((0.68, 0.95), (0.66, 0.04), (0.15, 0.68), (0.86, 0.68))],
    5: [np.concatenate([line((0.78, 0.05), (0.32, 0.05), (0.28, 0.44)),
                        arc(0.5, 0.68, 0.28, 0.27, 235, 500)])],
    6: [np.concatenate([line((0.72, 0.04), (0.46, 0.22), (0.3, 0.48)),
                        arc(0.5, 0.72, 0.23, 0.23, 195, 555)])],
    7: [line((0.18, 0.06), (0.82, 0.06), (0.42, 0.96))],
    8: [arc(0.5, 0.27, 0.21, 0.22, 90, 450), arc(0.5, 0.72, 0.26, 0.24, -90, 270)],
    9: [np.concatenate([arc(0.5, 0.3, 0.25, 0.25, 0, 360), line((0.75, 0.3), (0.7, 0.96))])],
}


def jitter(strokes, rng, wobble=0.012):
    """Random slant, rotation, aspect and per-point wobble; result still in the unit box."""
    angle = np.radians(rng.uniform(-8, 8))
    slant = rng.uniform(-0.25, 0.1)
    aspect = rng.uniform(0.8, 1.1)
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shape = np.array([[aspect, slant], [0.0, 1.0]])
    out = []
    for stroke in strokes:
        moved = (stroke - 0.5) @ (rotate @ shape).T + 0.5
        out.append(moved + rng.normal(0, wobble, moved.shape))
    return out


def draw_strokes(canvas, strokes, box, width, value, antialias=True):
    """Draw unit-box strokes into box = (x, y, w, h) of the canvas, pen `width` pixels."""
    x, y, w, h = box
    shift = 4                                   # sub-pixel precision for cv2 drawing
    for stroke in strokes:
        points = np.round((stroke * [w, h] + [x, y]) * (1 << shift)).astype(np.int32)
        cv2.polylines(canvas, [points], False, value, max(1, int(round(width))),
                      cv2.LINE_AA if antialias else cv2.LINE_8, shift)


def ink_coverage(size, items, width, antialias=True):
    """Float image in [0, 1]: 1 where the pen drew. items = [(strokes, box), ...]."""
    canvas = np.zeros(size, np.uint8)
    for strokes, box in items:
        draw_strokes(canvas, strokes, box, width, 255, antialias)
    return canvas.astype(np.float32) / 255


def layout(digits, rng, size, height_frac=0.7, gap=0.15, touching=False):
    """Boxes for a row of digits centred in a canvas of size (h, w)."""
    rows, cols = size
    height = rows * height_frac
    width = height * 0.85
    step = width * (0.86 if touching else 1 + gap)
    total = step * (len(digits) - 1) + width
    left = (cols - total) / 2
    top = (rows - height) / 2
    items = []
    for i, digit in enumerate(digits):
        dy = rng.uniform(-0.05, 0.05) * height
        box = (left + i * step, top + dy, width, height)
        items.append((jitter(SKELETONS[digit], rng), box))
    return items


def paper_photo(coverage, rng, ink_level=0.2):
    """Make ink coverage look like a phone photo of paper: texture, light gradient, shadow."""
    rows, cols = coverage.shape
    grain = cv2.GaussianBlur(rng.normal(0, 1, (rows, cols)).astype(np.float32), (0, 0), 1.5)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    light = 0.95 - 0.3 * (xx / cols) * rng.uniform(0.5, 1) - 0.15 * (yy / rows)
    shadow_x = rng.uniform(0.2, 0.8) * cols
    shadow = 0.25 / (1 + np.exp(-(xx - shadow_x) / (0.05 * cols)))   # soft-edged shadow
    paper = light - shadow + 0.03 * grain
    ink = ink_level + 0.05 * grain
    gray = paper * (1 - coverage) + ink * coverage
    gray += rng.normal(0, 0.02, gray.shape)
    tint = np.array([0.92, 0.97, 1.0], np.float32)          # warm indoor light (B, G, R)
    return np.clip(gray[:, :, None] * tint * 255, 0, 255).astype(np.uint8)


def plain(coverage, dark_on_light=True):
    """Gray uint8 image from coverage: black ink on white, or white ink on black."""
    value = 1 - coverage if dark_on_light else coverage
    return np.round(value * 255).astype(np.uint8)


def transparent(coverage, color=(30, 30, 30)):
    """BGRA image: the pen colour, opaque where it drew, transparent elsewhere."""
    rows, cols = coverage.shape
    image = np.zeros((rows, cols, 4), np.uint8)
    image[:, :, :3] = color
    image[:, :, 3] = np.round(coverage * 255).astype(np.uint8)
    return image


def coloured(coverage, ink=(160, 60, 20), paper=(200, 235, 245)):
    """BGR image: coloured ink on coloured paper."""
    c = coverage[:, :, None]
    return np.round(np.array(paper) * (1 - c) + np.array(ink) * c).astype(np.uint8)


def single_digit_images(rng):
    """(file name, image, imwrite params) for every single-digit image."""
    out = []
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 70]
    for d in range(10):
        # a paint program's 1-pixel pen on a 28x28 white canvas, no anti-aliasing
        cov = ink_coverage((28, 28), layout([d], rng, (28, 28), 0.62), 1, antialias=False)
        out.append((f"{d}_thin_white-bg.png", plain(cov), []))
        # a thick marker, white on black, small canvases
        side = [28, 40, 56, 64, 80, 96][d % 6]
        cov = ink_coverage((side, side), layout([d], rng, (side, side), 0.72), side / 10)
        out.append((f"{d}_thick_black-bg.png", plain(cov, dark_on_light=False), []))
        # a phone photo of paper
        rows, cols = int(rng.integers(300, 420)), int(rng.integers(300, 480))
        cov = ink_coverage((rows, cols), layout([d], rng, (rows, cols), 0.55), rows / 40)
        out.append((f"{d}_photo.jpg", paper_photo(cov, rng), jpeg))
    for d in (0, 2, 3, 6, 8):
        # a canvas export with a transparent background, medium pen
        cov = ink_coverage((200, 200), layout([d], rng, (200, 200), 0.7), 9)
        out.append((f"{d}_medium_transparent.png", transparent(cov), []))
    for d in (1, 4, 5, 7, 9):
        # blue ink on yellowish paper, medium-thin pen
        cov = ink_coverage((120, 120), layout([d], rng, (120, 120), 0.7), 3)
        out.append((f"{d}_thin_blue-ink.png", coloured(cov), []))
    cov = ink_coverage((200, 200), layout([7], rng, (200, 200), 0.7), 10)
    out.append(("7_medium_transparent-white-pen.png",
                transparent(cov, color=(255, 255, 255)), []))
    return out


def number_images(rng):
    """(file name, image, imwrite params) for images of multi-digit numbers."""
    out = []
    cov = ink_coverage((160, 420), layout([2, 0, 2, 5], rng, (160, 420), 0.7), 11)
    out.append(("number_2025.png", plain(cov), []))
    cov = ink_coverage((340, 560), layout([3, 1, 4], rng, (340, 560), 0.45), 8)
    out.append(("number_314_photo.jpg", paper_photo(cov, rng), [cv2.IMWRITE_JPEG_QUALITY, 70]))
    cov = ink_coverage((48, 150), layout([1, 9, 6, 8], rng, (48, 150), 0.7), 1, False)
    out.append(("number_1968_thin.png", plain(cov), []))
    cov = ink_coverage((120, 200), layout([4, 7], rng, (120, 200), 0.7), 9)
    out.append(("number_47_black-bg.png", plain(cov, dark_on_light=False), []))
    cov = ink_coverage((150, 300), layout([5, 0, 9], rng, (150, 300), 0.7, touching=True), 9)
    out.append(("number_509_touching.png", plain(cov), []))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "digits"))
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = single_digit_images(rng) + number_images(rng)
    for name, image, params in images:
        cv2.imwrite(str(out / name), image, params)
    print(f"wrote {len(images)} images to {out}")


if __name__ == "__main__":
    main()
