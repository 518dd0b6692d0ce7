"""Generated test sets for the reader: MNIST digits written out as users' image files.

Nothing here is collected: every image is made from MNIST digits (the *test* digits for the
figures we report, the *training* digits when tuning) or from the pen-stroke digits of
`examples/make_digits.py`, and written to a folder given by the caller (never the repository).

- `write_user_digits`: one digit per file, dark on white, 28-112 px, PNG and JPEG, some on
  larger canvases. The label is the file name's first character.
- `write_numbers_and_pages`: lines of digits with varied spacing, size and slant, touching
  pairs, 1 to 5 lines, on paper-like backgrounds with uneven light, PNG and JPEG (or, with
  `turn`, the whole page turned as if photographed askew). The label
  (lines joined by "_", since "/" cannot be in a file name) is the name's part before "__".
- `write_lined_pages`: 1 to 4 lines of numbers written on the rules of ruled or squared
  paper (rules faint grey to nearly as dark as the ink), photographed as `photo_of_paper`
  photographs and turned by up to 4 degrees, PNG and JPEG; labelled as
  `write_numbers_and_pages` labels them.
- `write_scanned_pages`: A4 pages scanned at 300 dpi with one or two short numbers, digits 3
  to 6 mm tall, PNG and JPEG; labelled the same way.
- `write_pen_style_digits`: MNIST digits re-drawn as users' pens make them (fine pens and
  markers, slanted, squashed or stretched, a little rotated), dark ink on white-to-cream
  paper under uneven light, 28-160 px, PNG and JPEG. Named like `write_user_digits`'s files,
  with the pen added: `7_00012_thick.png`.
- `write_non_digits`: held-out images that are not digits: letters and symbols in OpenCV's
  Hershey fonts and doodles (stars, hearts, smileys, houses, spirals, waves, blobs, hatching).
  The kind is in the name: `nondigit_0007_letter-K.png`, `nondigit_0012_doodle-star.jpg`
  (`non_digit_kind` reads it back).

    python benchmarks/reading_sets.py OUT [--count 200] [--split test] [--pen-style N]
        [--non-digits N]
"""

from __future__ import annotations

import argparse
import string
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import make_digits  # noqa: E402

from tinynet import vision  # noqa: E402
from tinynet.vision import stroke_width  # noqa: E402


def label_of(path: Path) -> str:
    """The reading expected from a file's name: '7_00012.png' -> '7', a generated page
    '123_456__0007.jpg' -> '123/456', and digits/'s 'number_2025_photo.jpg' -> '2025'."""
    name = path.stem
    if name.startswith("number_"):
        return name.split("_")[1]
    if "__" in name:
        return name.split("__")[0].replace("_", "/")
    return name[0]


def _save(path: Path, gray: np.ndarray, rng) -> None:
    if path.suffix == ".jpg":
        quality = int(rng.integers(60, 96))
        ok, buffer = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
    else:
        ok, buffer = cv2.imencode(".png", gray)
    assert ok
    path.write_bytes(buffer.tobytes())


def write_user_digits(images, labels, folder, rng, count=2000) -> list[Path]:
    """`count` MNIST digits as dark-on-white files of 28-112 px, half PNG, half JPEG."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        side = int(rng.integers(28, 113))
        digit = cv2.resize(255 - images[i], (side, side), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.3:             # on a larger canvas, somewhere inside it
            canvas = np.full((int(side * rng.uniform(1.2, 2.5)),) * 2, 255, np.uint8)
            top = int(rng.integers(0, canvas.shape[0] - side + 1))
            left = int(rng.integers(0, canvas.shape[1] - side + 1))
            canvas[top:top + side, left:left + side] = digit
            digit = canvas
        path = folder / f"{labels[i]}_{i:05d}.{'png' if i % 2 == 0 else 'jpg'}"
        _save(path, digit, rng)
        paths.append(path)
    return paths


def _mnist_glyph(images, labels, rng, digit, height):
    """Coverage (ink = 1) of a random MNIST digit of class `digit`, `height` px tall."""
    choices = np.flatnonzero(labels == digit)
    image = images[rng.choice(choices)].astype(np.float32) / 255
    ys, xs = np.nonzero(image > 0.1)
    image = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    scale = height / image.shape[0]
    width = max(1, round(image.shape[1] * scale * rng.uniform(0.85, 1.15)))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _stroke_glyph(rng, digit, height):
    """Coverage of a pen-stroke digit from make_digits, `height` px tall, random pen."""
    width = int(height * 0.8)
    canvas = np.zeros((height + 8, width + 8), np.float32)
    pen = max(1.0, height * rng.uniform(0.05, 0.14))
    make_digits.draw_strokes(canvas, make_digits.jitter(make_digits.SKELETONS[digit], rng),
                             (4, 4, width, height), pen, 1.0)
    ys, xs = np.nonzero(canvas > 0.1)
    return canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _shear(glyph, rng):
    slant = rng.uniform(-0.25, 0.25)
    h, w = glyph.shape
    extra = int(abs(slant) * h) + 1
    matrix = np.float32([[1, -slant, extra if slant > 0 else 0], [0, 1, 0]])
    return cv2.warpAffine(glyph, matrix, (w + extra, h))


def _number_line(images, labels, rng, height, style):
    """(coverage of one line of digits, its text). Gaps vary; some pairs touch."""
    count = int(rng.integers(1, 7))
    digits = rng.integers(0, 10, count)
    glyphs = []
    for d in digits:
        h = int(height * rng.uniform(0.9, 1.1))
        g = _mnist_glyph(images, labels, rng, d, h) if style == "mnist" else \
            _stroke_glyph(rng, d, h)
        glyphs.append(_shear(g, rng))
    tall = max(g.shape[0] for g in glyphs)
    gaps = [int(height * (rng.uniform(-0.06, 0.02) if rng.random() < 0.2 else
                          rng.uniform(0.08, 0.6))) for _ in glyphs[1:]]
    width = sum(g.shape[1] for g in glyphs) + sum(gaps) + 2
    row = np.zeros((tall + 2, max(width, 4)), np.float32)
    x = 1
    for k, g in enumerate(glyphs):
        top = 1 + (tall - g.shape[0]) // 2
        region = row[top:top + g.shape[0], x:x + g.shape[1]]
        np.maximum(region, g[:, :region.shape[1]], out=region)
        x += g.shape[1] + (gaps[k] if k < len(gaps) else 0)
    return row, "".join(str(int(d)) for d in digits)


def photo_of_paper(coverage, rng, rules=None) -> np.ndarray:
    """Ink coverage photographed on paper: light x reflectance, plus grain and sensor noise.

    The light falls off across the page and a soft shadow darkens part of it; ink (pen or
    pencil, reflectance 0.05-0.45) and paper (0.75-0.95) are both lit by it, as in a photo.
    `rules`: the coverage of rules printed on the paper under the ink, 15-85% of the way
    from the paper's shade to the ink's (faint grey to nearly as dark as the ink).
    """
    rows, cols = coverage.shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / cols + np.sin(angle) * yy / rows)
    light = 1.0 - rng.uniform(0.1, 0.4) * (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    edge = rng.uniform(0.2, 0.8) * cols
    light *= 1 - rng.uniform(0.1, 0.45) / (1 + np.exp(-(xx - edge) / (0.04 * cols)))
    grain = cv2.GaussianBlur(rng.normal(0, 1, (rows, cols)).astype(np.float32), (0, 0), 1.2)
    paper, ink = rng.uniform(0.75, 0.95), rng.uniform(0.05, 0.45)
    if rules is not None:        # printed under the ink, lighter than it
        rule = paper - rng.uniform(0.15, 0.85) * (paper - ink)
        paper = paper * (1 - rules) + rule * rules
    reflectance = paper * (1 - coverage) + ink * coverage + 0.02 * grain
    gray = light * reflectance + rng.normal(0, 0.015, coverage.shape)
    return np.clip(gray * 255, 0, 255).astype(np.uint8)


def write_numbers_and_pages(images, labels, folder, rng, count=200, turn=None) -> list[Path]:
    """`count` images of 1-5 lines of numbers on paper-like backgrounds, PNG and JPEG; with
    `turn` = (low, high), each page turned by low to high degrees either way, as a page
    photographed askew."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        lines = int(rng.choice([1, 1, 2, 3, 4, 5]))
        style = "mnist" if rng.random() < 0.6 else "strokes"
        base = int(rng.integers(28, 90))
        rows, texts = [], []
        for _ in range(lines):
            row, text = _number_line(images, labels, rng, int(base * rng.uniform(0.75, 1.3)),
                                     style)
            angle = rng.uniform(-4, 4)         # the line slopes a little
            h, w = row.shape
            pad = int(abs(np.tan(np.radians(angle))) * w / 2) + 2
            row = cv2.copyMakeBorder(row, pad, pad, 2, 2, cv2.BORDER_CONSTANT, value=0)
            matrix = cv2.getRotationMatrix2D((row.shape[1] / 2, row.shape[0] / 2), angle, 1)
            rows.append(cv2.warpAffine(row, matrix, (row.shape[1], row.shape[0])))
            texts.append(text)
        spacing = [int(base * rng.uniform(0.25, 0.9)) for _ in rows]
        margin = int(base * rng.uniform(0.5, 1.5))
        width = max(r.shape[1] for r in rows) + 2 * margin
        height = sum(r.shape[0] for r in rows) + sum(spacing[1:]) + 2 * margin
        coverage = np.zeros((height, width), np.float32)
        y = margin
        for k, r in enumerate(rows):
            left = margin + int(rng.integers(0, width - 2 * margin - r.shape[1] + 1))
            coverage[y:y + r.shape[0], left:left + r.shape[1]] = np.maximum(
                coverage[y:y + r.shape[0], left:left + r.shape[1]], r)
            y += r.shape[0] + (spacing[k + 1] if k + 1 < len(rows) else 0)
        coverage = np.clip(coverage, 0, 1)
        if turn is not None:
            degrees = rng.choice([-1, 1]) * rng.uniform(*turn)
            coverage = np.clip(vision.turn(coverage, degrees)[0], 0, 1)
        if rng.random() < 0.7:
            gray = photo_of_paper(coverage, rng)
        else:
            gray = make_digits.plain(coverage)
        path = folder / f"{'_'.join(texts)}__{i:04d}.{'jpg' if i % 2 else 'png'}"
        _save(path, gray, rng)
        paths.append(path)
    return paths


def write_lined_pages(images, labels, folder, rng, count=200) -> list[Path]:
    """`count` images of 1-4 lines of numbers written on ruled or squared paper whose rules
    are printed fainter than the ink (or nearly as dark), photographed (`photo_of_paper`)
    and turned by up to 4 degrees, PNG and JPEG; labelled as `write_numbers_and_pages`
    labels them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        squared = rng.random() < 0.5
        base = int(rng.integers(30, 80))                         # digit height, px
        step = int(base * (rng.uniform(0.5, 0.7) if squared else rng.uniform(1.3, 1.7)))
        lines = int(rng.choice([1, 2, 3, 4]))
        style = "mnist" if rng.random() < 0.6 else "strokes"
        rows = [_number_line(images, labels, rng, base, style) for _ in range(lines)]
        # rules from one line's feet to the next's: on squared paper, enough squares to
        # leave a gap of at least a third of a digit between lines
        skip = int(np.ceil(1.35 * base / step)) if squared else 1
        below = [skip + int(squared and rng.random() < 0.3) for _ in range(lines)]
        margin = 2 * step
        width = max(r.shape[1] for r, _ in rows) + 2 * margin
        height = margin + sum(step * b for b in below) + base + margin
        # paper beyond the photo's frame, so that its corners hold paper once turned
        extra = int(np.tan(np.radians(4)) * max(width, height) / 2) + 2
        margin, width, height = margin + extra, width + 2 * extra, height + 2 * extra
        coverage = np.zeros((height, width), np.float32)
        y = margin + base                                       # the first line's feet
        for (row, _), b in zip(rows, below):
            left = margin + int(rng.integers(0, width - 2 * margin - row.shape[1] + 1))
            feet = int(np.nonzero(row.max(axis=1) > 0.5)[0].max())
            top = y - feet + int(rng.integers(-2, 3))           # written on the rule
            region = coverage[top:top + row.shape[0], left:left + row.shape[1]]
            np.maximum(region, row[:region.shape[0]], out=region)
            y += step * b
        rules = _rules(coverage.shape, step, (margin + base) % step, squared, rng)
        gray = photo_of_paper(coverage, rng, rules)
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-4, 4), 1)
        gray = cv2.warpAffine(gray, turn, (width, height))[extra:-extra, extra:-extra]
        texts = [text for _, text in rows]
        path = folder / f"{'_'.join(texts)}__{i:04d}.{'jpg' if i % 2 else 'png'}"
        _save(path, gray, rng)
        paths.append(path)
    return paths


def _rules(shape, step, offset, squared, rng) -> np.ndarray:
    """Printed rules (coverage in [0, 1]) every `step` px from row `offset`, anti-aliased,
    1-2 px wide; with columns too when `squared`."""
    scale = 4                                  # drawn 4 times larger, then shrunk
    rows, cols = shape
    big = np.zeros((rows * scale, cols * scale), np.float32)
    pen = max(1, round(rng.uniform(0.7, 1.8) * scale))
    for y in range(offset, rows, step):
        cv2.line(big, (0, y * scale), (cols * scale, y * scale), 1.0, pen, cv2.LINE_AA)
    if squared:
        for x in range(int(rng.integers(0, step)), cols, step):
            cv2.line(big, (x * scale, 0), (x * scale, rows * scale), 1.0, pen, cv2.LINE_AA)
    return cv2.resize(big, (cols, rows), interpolation=cv2.INTER_AREA)


def write_scanned_pages(images, labels, folder, rng, count=100) -> list[Path]:
    """`count` A4 pages scanned at 300 dpi (2480x3508) holding one or two short numbers with
    digits 3 to 6 mm (35-70 px) tall anywhere on them, PNG and JPEG; labelled as
    `write_numbers_and_pages` labels them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        height = int(rng.integers(35, 71))
        style = "mnist" if rng.random() < 0.6 else "strokes"
        rows = [_number_line(images, labels, rng, height, style)
                for _ in range(int(rng.integers(1, 3)))]
        coverage = np.zeros((3508, 2480), np.float32)
        top = int(rng.integers(150, 3508 - 150 - 3 * height * len(rows)))
        for row, _ in rows:
            left = int(rng.integers(150, 2480 - 150 - row.shape[1]))
            region = coverage[top:top + row.shape[0], left:left + row.shape[1]]
            np.maximum(region, row, out=region)
            top += row.shape[0] + int(height * rng.uniform(0.4, 1.2))
        paper, ink = rng.uniform(0.9, 0.98), rng.uniform(0.05, 0.3)
        gray = paper * (1 - coverage) + ink * coverage + rng.normal(0, 0.01, coverage.shape)
        gray = np.clip(gray * 255, 0, 255).astype(np.uint8)
        texts = [text for _, text in rows]
        path = folder / f"{'_'.join(texts)}__{i:04d}.{'jpg' if i % 2 else 'png'}"
        _save(path, gray, rng)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Shared by the pen-style digits and the non-digits: a glyph placed on a canvas, then on paper
# --------------------------------------------------------------------------------------------

def _crop_ink(coverage: np.ndarray) -> np.ndarray:
    """The coverage cut to the box of its ink."""
    ys, xs = np.nonzero(coverage > 0.05)
    return coverage[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _place(glyph: np.ndarray, rng, scale: float, side: int) -> np.ndarray:
    """The glyph (a coverage crop) resized by `scale` onto a blank canvas `side` px tall and
    about as wide; three times in ten on a canvas 1.3-3 times larger, anywhere inside it, as
    when a user writes in a corner of a big canvas. The ink keeps off the canvas's edges,
    where a reader may take it for the edge of a page."""
    height = max(1, round(glyph.shape[0] * scale))
    width = max(1, round(glyph.shape[1] * scale))
    shrinking = scale < 1
    small = cv2.resize(glyph, (width, height),
                       interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    rows = max(side, height + 4)
    cols = max(int(side * rng.uniform(0.85, 1.2)), width + 4)
    if rng.random() < 0.3:
        grow = rng.uniform(1.3, 3.0)
        rows, cols = int(rows * grow), int(cols * grow)
    canvas = np.zeros((rows, cols), np.float32)
    top = int(rng.integers(2, rows - height - 1))
    left = int(rng.integers(2, cols - width - 1))
    canvas[top:top + height, left:left + width] = np.clip(small, 0, 1)
    return canvas


def _on_paper(coverage: np.ndarray, rng) -> np.ndarray:
    """Dark ink on light paper as a colour (BGR) uint8 image.

    The paper is white to cream, the ink black, graphite grey or ballpoint blue; the light
    falls off by up to a quarter across the sheet, and a little sensor noise is added.
    """
    rows, cols = coverage.shape
    cream = rng.uniform(0, 1)
    paper = (1 - cream * np.array([0.16, 0.05, 0.0])) * rng.uniform(0.88, 1.0)   # B, G, R
    inks = {"black": (0.08, 0.08, 0.08), "graphite": (0.3, 0.3, 0.3),
            "blue": (0.45, 0.18, 0.1)}
    ink = np.array(inks[rng.choice(list(inks))]) * rng.uniform(0.7, 1.2)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / cols + np.sin(angle) * yy / rows
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    light = 1.0 - rng.uniform(0.0, 0.25) * ramp
    c = coverage[:, :, None]
    colour = (paper * (1 - c) + ink * c) * light[:, :, None]
    colour += rng.normal(0, rng.uniform(0.005, 0.025), colour.shape)
    return np.clip(colour * 255, 0, 255).astype(np.uint8)


def _suffix(rng) -> str:
    return "png" if rng.random() < 0.5 else "jpg"


# --------------------------------------------------------------------------------------------
# Pen-style digits: MNIST test digits re-drawn as users' pens make them
# --------------------------------------------------------------------------------------------

PEN_WORK_SCALE = 4      # digits are re-drawn at 112 px, where a pen can be finer than MNIST's
#: stroke width of each pen, as a fraction of the digit's height (MNIST's median is 0.11)
PEN_WIDTHS = {"fine": (0.035, 0.06), "medium": (0.08, 0.13), "marker": (0.16, 0.24)}
PEN_CHANCES = (0.4, 0.2, 0.4)


def _shape_signature(coverage: np.ndarray) -> tuple[int, int]:
    """(pieces, loops) of the ink, specks and pinholes aside. A new pen must keep both, so
    that a marker never fills the loops of an 8 and a fine pen never breaks a 4 apart."""
    mask = (coverage > 0.5).astype(np.uint8)
    ink = max(int(mask.sum()), 1)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    pieces = int((stats[1:, cv2.CC_STAT_AREA] >= 0.03 * ink).sum())
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    ys, xs = np.nonzero(mask)
    box_area = (np.ptp(ys) + 1) * (np.ptp(xs) + 1) if len(ys) else 1
    loops = 0
    if hierarchy is not None:       # an inner contour (one with a parent) outlines a loop
        loops = sum(1 for contour, (_, _, _, parent) in zip(contours, hierarchy[0])
                    if parent >= 0 and cv2.contourArea(contour) >= 0.015 * box_area)
    return pieces, loops


def _repen(coverage: np.ndarray, rng, pen: str, min_width: float) -> np.ndarray:
    """The digit's strokes made the width of `pen` by grey erosion (finer) or dilation
    (thicker): a width drawn from PEN_WIDTHS, never under `min_width` pixels (one pixel of
    the final image), and less of a change while the full one would break or fill the shape."""
    mask = (coverage > 0.5).astype(np.uint8)
    rows = np.flatnonzero(mask.any(axis=1))
    low, high = PEN_WIDTHS[pen]
    target = max(rng.uniform(low, high) * (rows[-1] - rows[0] + 1), min_width)
    current = stroke_width(mask)
    radius = int(round(abs(target - current) / 2))
    change = cv2.dilate if target > current else cv2.erode
    signature = _shape_signature(coverage)
    for r in range(radius, 0, -1):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        changed = change(coverage, kernel)
        if _shape_signature(changed) == signature:
            return changed
    return coverage


def _slant_squash_rotate(coverage: np.ndarray, rng) -> np.ndarray:
    """A slant (shear of up to 0.3), a width of 0.7-1.3 times the height's share, and a turn
    of up to 10 degrees, about the middle, on a canvas large enough to keep all the ink."""
    slant = rng.uniform(-0.3, 0.3)
    aspect = rng.uniform(0.7, 1.3)
    angle = np.radians(rng.uniform(-10, 10))
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = turn @ np.array([[1.0, -slant], [0.0, 1.0]]) @ np.diag([aspect, 1.0])
    rows, cols = coverage.shape
    out = int(2 * max(rows, cols))
    centre_in, centre_out = np.array([cols / 2, rows / 2]), np.array([out / 2, out / 2])
    matrix = np.hstack([linear, (centre_out - linear @ centre_in)[:, None]])
    return cv2.warpAffine(coverage, matrix.astype(np.float32), (out, out),
                          flags=cv2.INTER_LINEAR)


def _pen_style_digit(image: np.ndarray, rng) -> tuple[np.ndarray, str]:
    """(BGR image, pen name) of one 28x28 MNIST digit re-drawn as a user's pen would."""
    side = int(rng.integers(28, 161))            # the canvas's height in the file
    fill = rng.uniform(0.6, 0.85)                # the share of it the digit's height takes
    pen = str(rng.choice(list(PEN_WIDTHS), p=PEN_CHANCES))
    work = cv2.resize(image.astype(np.float32) / 255, None, fx=PEN_WORK_SCALE,
                      fy=PEN_WORK_SCALE, interpolation=cv2.INTER_LINEAR)
    work = cv2.copyMakeBorder(work, 24, 24, 24, 24, cv2.BORDER_CONSTANT, value=0)
    height = _crop_ink(work).shape[0]
    work = _repen(work, rng, pen, min_width=height / (fill * side))
    glyph = _crop_ink(_slant_squash_rotate(work, rng))
    coverage = _place(glyph, rng, fill * side / glyph.shape[0], side)
    return _on_paper(coverage, rng), pen


def write_pen_style_digits(folder, images, labels, seed) -> list[Path]:
    """Every digit of `images` (28x28 uint8, MNIST-style) re-drawn as users' pens make them:
    fine pens and markers, slanted, squashed or stretched, a little rotated, dark ink on
    white-to-cream paper under uneven light, 28-160 px (some on larger canvases), PNG and JPEG.

    The file name starts with the label, as `write_user_digits`'s do, and names the pen:
    `7_00012_marker.png`. Each transform's strength is drawn per image from `seed`, so the
    same seed writes the same files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (image, label) in enumerate(zip(images, labels)):
        picture, pen = _pen_style_digit(image, rng)
        path = folder / f"{int(label)}_{i:05d}_{pen}.{_suffix(rng)}"
        _save(path, picture, rng)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Non-digits, made unlike the training negatives (pen-stroke skeletons and MNIST fragments):
# Hershey-font letters and symbols, and doodles drawn from OpenCV's other primitives
# --------------------------------------------------------------------------------------------

NON_DIGIT_WORK = 256    # doodles are drawn on a square of this side, then scaled
#: letters that do not look like a digit (O, I, S, Z, B, G, q... are left out)
LETTERS = [c for c in string.ascii_letters if c not in "OoQDIlijJSsZzBGbgqTyA"]
#: symbols, with the word that stands for each in a file name
SYMBOLS = {"+": "plus", "*": "asterisk", "#": "hash", "@": "at", "&": "ampersand",
           "%": "percent", "$": "dollar", "?": "question", "!": "exclamation", "=": "equals",
           "<": "less", ">": "greater", "~": "tilde", "x": "times"}
HERSHEY_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX,
                 cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
                 cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
                 cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
_SHIFT = 4              # sub-pixel bits for OpenCV's drawing functions


def _points(xy) -> np.ndarray:
    """Float (x, y) points as the fixed-point int32 array cv2 draws with `_SHIFT`."""
    return np.round(np.asarray(xy, np.float64) * (1 << _SHIFT)).astype(np.int32)


def _hershey_glyph(text: str, rng) -> np.ndarray:
    """Coverage of `text` in a random Hershey font (italic three times in ten), scale and
    stroke thickness."""
    font = int(rng.choice(HERSHEY_FONTS)) | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    scale = rng.uniform(2.0, 5.0)
    thickness = int(rng.integers(1, max(2, int(scale * 2.2))))  # hairline to bold
    (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
    pad = 4 * thickness + 8              # italics and thick strokes reach past the box
    canvas = np.zeros((height + baseline + 2 * pad, width + 2 * pad), np.uint8)
    cv2.putText(canvas, text, (pad, pad + height), font, scale, 255, thickness, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255


def _pen(rng) -> int:
    """A line thickness on the doodle square."""
    return int(rng.integers(3, 15))


def _star(canvas, rng):
    tips = int(rng.integers(5, 8))
    outer = rng.uniform(70, 120)
    radii = np.where(np.arange(2 * tips) % 2 == 0, outer, outer * rng.uniform(0.35, 0.55))
    angles = rng.uniform(0, np.pi) + np.pi * np.arange(2 * tips) / tips
    star = _points(np.stack([128 + radii * np.cos(angles), 128 + radii * np.sin(angles)], 1))
    if rng.random() < 0.5:
        cv2.fillPoly(canvas, [star], 255, cv2.LINE_AA, _SHIFT)
    else:
        cv2.polylines(canvas, [star], True, 255, _pen(rng), cv2.LINE_AA, _SHIFT)


def _heart(canvas, rng):
    r = rng.uniform(30, 50)
    top = 128 - r * 0.6
    for cx in (128 - r * 0.9, 128 + r * 0.9):
        cv2.circle(canvas, tuple(_points((cx, top))), int(r * (1 << _SHIFT)), 255, -1,
                   cv2.LINE_AA, _SHIFT)
    tip = top + r * rng.uniform(2.2, 3.0)
    triangle = _points([(128 - r * 1.85, top + r * 0.35), (128 + r * 1.85, top + r * 0.35),
                        (128, tip)])
    cv2.fillPoly(canvas, [triangle], 255, cv2.LINE_AA, _SHIFT)
    if rng.random() < 0.5:          # an outlined heart: the filled one less its inside
        inside = cv2.erode(canvas, np.ones((2 * _pen(rng) + 1,) * 2, np.uint8))
        canvas -= np.minimum(canvas, inside)


def _smiley(canvas, rng):
    r = rng.uniform(70, 110)
    pen = _pen(rng)
    cv2.circle(canvas, (128, 128), int(r), 255, pen, cv2.LINE_AA)
    for side in (-1, 1):
        eye = (int(128 + side * r * 0.35), int(128 - r * 0.3))
        cv2.circle(canvas, eye, max(3, int(r * rng.uniform(0.08, 0.15))), 255, -1, cv2.LINE_AA)
    smile = int(rng.uniform(0.4, 0.6) * r)
    cv2.ellipse(canvas, (128, int(128 + r * 0.1)), (smile, int(smile * 0.7)), 0, 20, 160, 255,
                pen, cv2.LINE_AA)


def _house(canvas, rng):
    half, wall = rng.uniform(50, 80), rng.uniform(60, 100)
    floor, eaves = 128 + wall / 2 + 20, 128 - wall / 2 + 20
    pen = _pen(rng)
    body = _points([(128 - half, eaves), (128 - half, floor), (128 + half, floor),
                    (128 + half, eaves)])
    roof = _points([(128 - half - 10, eaves), (128, eaves - rng.uniform(40, 70)),
                    (128 + half + 10, eaves)])
    lintel = floor - wall * 0.5
    door = _points([(116, floor), (116, lintel), (140, lintel), (140, floor)])
    cv2.polylines(canvas, [body, roof, door], True, 255, pen, cv2.LINE_AA, _SHIFT)


def _crossed_box(canvas, rng):
    a, b = rng.uniform(60, 110), rng.uniform(60, 110)
    pen = _pen(rng)
    cv2.rectangle(canvas, (int(128 - a), int(128 - b)), (int(128 + a), int(128 + b)), 255, pen,
                  cv2.LINE_AA)
    if rng.random() < 0.5:              # an X from corner to corner
        ends = [((128 - a, 128 - b), (128 + a, 128 + b)), ((128 + a, 128 - b), (128 - a, 128 + b))]
    else:                               # a + through the middle
        ends = [((128 - a, 128), (128 + a, 128)), ((128, 128 - b), (128, 128 + b))]
    for start, stop in ends:
        cv2.line(canvas, tuple(_points(start)), tuple(_points(stop)), 255, pen, cv2.LINE_AA,
                 _SHIFT)


def _spiral(canvas, rng):
    turns = rng.uniform(2.0, 4.0)
    theta = np.linspace(0, 2 * np.pi * turns, 400)
    radius = 110 * theta / theta[-1]
    sense = rng.choice([-1, 1])
    path = np.stack([128 + radius * np.cos(sense * theta), 128 + radius * np.sin(theta)], 1)
    cv2.polylines(canvas, [_points(path)], False, 255, _pen(rng), cv2.LINE_AA, _SHIFT)


def _wave(canvas, rng):
    periods = rng.uniform(2.0, 5.0)
    x = np.linspace(10, 246, 300)
    height = rng.uniform(15, 50)
    phase = 2 * np.pi * periods * (x - 10) / 236
    if rng.random() < 0.5:
        y = 128 + height * np.sin(phase)
    else:                               # a zigzag: the triangle wave of the same phase
        y = 128 + height * (2 / np.pi) * np.arcsin(np.sin(phase))
    cv2.polylines(canvas, [_points(np.stack([x, y], 1))], False, 255, _pen(rng), cv2.LINE_AA,
                  _SHIFT)


def _blob(canvas, rng):
    for _ in range(int(rng.integers(1, 4))):
        centre = rng.uniform(80, 176, 2)
        theta = np.linspace(0, 2 * np.pi, 120, endpoint=False)
        radius = rng.uniform(25, 60) * np.ones_like(theta)
        for k in (2, 3, 5):             # a few smooth bulges make it irregular
            radius *= 1 + rng.uniform(0, 0.25) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        outline = centre + np.stack([radius * np.cos(theta), radius * np.sin(theta)], 1)
        cv2.fillPoly(canvas, [_points(outline)], 255, cv2.LINE_AA, _SHIFT)


def _hatching(canvas, rng):
    pen = max(2, _pen(rng) // 2)
    gap = rng.uniform(14, 30)
    directions = [rng.uniform(0, np.pi)]
    if rng.random() < 0.7:              # cross-hatching: a second set across the first
        directions.append(directions[0] + rng.uniform(np.pi / 4, 3 * np.pi / 4))
    region = np.zeros_like(canvas)
    for angle in directions:
        along = np.array([np.cos(angle), np.sin(angle)])
        across = np.array([-along[1], along[0]])
        for offset in np.arange(-180, 180, gap):
            a, b = 128 + offset * across - 200 * along, 128 + offset * across + 200 * along
            cv2.line(region, tuple(_points(a)), tuple(_points(b)), 255, pen, cv2.LINE_AA,
                     _SHIFT)
    a, b = rng.uniform(50, 100, 2)
    window = np.zeros_like(canvas)
    cv2.rectangle(window, (int(128 - a), int(128 - b)), (int(128 + a), int(128 + b)), 255, -1)
    np.maximum(canvas, np.minimum(region, window), out=canvas)


DOODLES = {"star": _star, "heart": _heart, "smiley": _smiley, "house": _house,
           "crossed-box": _crossed_box, "spiral": _spiral, "wave": _wave, "blob": _blob,
           "hatching": _hatching}
#: how often each family is drawn
NON_DIGIT_FAMILIES = {"letter": 0.4, "symbol": 0.25, "doodle": 0.35}


def _non_digit(rng) -> tuple[np.ndarray, str]:
    """(coverage, kind) of one non-digit; the kind is 'letter-K', 'symbol-plus', ..."""
    family = str(rng.choice(list(NON_DIGIT_FAMILIES), p=list(NON_DIGIT_FAMILIES.values())))
    if family == "letter":
        letter = str(rng.choice(LETTERS))
        return _hershey_glyph(letter, rng), f"letter-{letter}"
    if family == "symbol":
        symbol = str(rng.choice(list(SYMBOLS)))
        return _hershey_glyph(symbol, rng), f"symbol-{SYMBOLS[symbol]}"
    shape = str(rng.choice(list(DOODLES)))
    canvas = np.zeros((NON_DIGIT_WORK, NON_DIGIT_WORK), np.uint8)
    DOODLES[shape](canvas, rng)
    return canvas.astype(np.float32) / 255, f"doodle-{shape}"


def write_non_digits(folder, count, seed) -> list[Path]:
    """`count` images that are not digits, dark on light paper, 28-200 px, PNG and JPEG.

    Made unlike the training negatives (pen-stroke skeletons and MNIST fragments), to measure
    rejection on shapes the network never saw: letters and symbols in OpenCV's Hershey fonts
    (every font, sometimes italic, of varied thickness) and doodles drawn with OpenCV's other
    primitives. The name carries the kind: `nondigit_0007_letter-K.png`,
    `nondigit_0012_doodle-star.jpg` (see `non_digit_kind`). Seeded: the same seed writes the
    same files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coverage, kind = _non_digit(rng)
        glyph = _crop_ink(coverage)
        side = int(rng.integers(28, 201))
        scale = rng.uniform(0.55, 0.85) * side / max(glyph.shape)
        picture = _on_paper(_place(glyph, rng, scale, side), rng)
        path = folder / f"nondigit_{i:04d}_{kind}.{_suffix(rng)}"
        _save(path, picture, rng)
        paths.append(path)
    return paths


def non_digit_kind(path) -> str:
    """The kind of a `write_non_digits` file: 'letter', 'symbol' or 'doodle-<shape>'
    ('nondigit_0012_doodle-star.jpg' -> 'doodle-star'); ValueError for other names."""
    parts = Path(path).stem.split("_")
    if len(parts) != 3 or parts[0] != "nondigit" or "-" not in parts[2]:
        raise ValueError(f"not a write_non_digits file name: {Path(path).name}")
    family = parts[2].split("-", 1)[0]
    return parts[2] if family == "doodle" else family


def main(argv=None):
    sys.path.insert(0, str(ROOT))
    from tinynet import data

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--split", choices=("train", "test"), default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data")
    p.add_argument("--pen-style", type=int, default=0, metavar="N",
                   help="also write N pen-style digits (into OUT/pen)")
    p.add_argument("--non-digits", type=int, default=0, metavar="N",
                   help="also write N non-digit images (into OUT/non-digits)")
    args = p.parse_args(argv)
    x_train, y_train, x_test, y_test = data.load_mnist(args.data)
    images, labels = (x_test, y_test) if args.split == "test" else (x_train, y_train)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    write_user_digits(images, labels, out / "digits", rng, args.count)
    write_numbers_and_pages(images, labels, out / "pages", rng, args.count)
    print(f"wrote {args.count} digits and {args.count} numbers and pages under {out}")
    if args.pen_style:
        write_pen_style_digits(out / "pen", images[:args.pen_style], labels[:args.pen_style],
                               args.seed)
        print(f"wrote {min(args.pen_style, len(images))} pen-style digits under {out / 'pen'}")
    if args.non_digits:
        write_non_digits(out / "non-digits", args.non_digits, args.seed)
        print(f"wrote {args.non_digits} non-digits under {out / 'non-digits'}")


if __name__ == "__main__":
    main()
