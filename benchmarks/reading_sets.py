"""Generated test sets for the reader: MNIST digits written out as users' image files.

Nothing here is collected: every image is made from MNIST digits (the *test* digits for the
figures we report, the *training* digits when tuning) or from the pen-stroke digits of
`examples/make_digits.py`, and written to a folder given by the caller (never the repository).

- `write_user_digits`: one digit per file, dark on white, 28-112 px, PNG and JPEG, some on
  larger canvases. The label is the file name's first character.
- `write_numbers_and_pages`: lines of digits with varied spacing, size and slant, touching
  pairs, 1 to 5 lines, on paper-like backgrounds with uneven light, PNG and JPEG. The label
  (lines joined by "_", since "/" cannot be in a file name) is the name's part before "__".

    python benchmarks/reading_sets.py OUT [--count 200] [--split test]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import make_digits  # noqa: E402


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


def photo_of_paper(coverage, rng) -> np.ndarray:
    """Ink coverage photographed on paper: light x reflectance, plus grain and sensor noise.

    The light falls off across the page and a soft shadow darkens part of it; ink (pen or
    pencil, reflectance 0.05-0.45) and paper (0.75-0.95) are both lit by it, as in a photo.
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
    reflectance = paper * (1 - coverage) + ink * coverage + 0.02 * grain
    gray = light * reflectance + rng.normal(0, 0.015, coverage.shape)
    return np.clip(gray * 255, 0, 255).astype(np.uint8)


def write_numbers_and_pages(images, labels, folder, rng, count=200) -> list[Path]:
    """`count` images of 1-5 lines of numbers on paper-like backgrounds, PNG and JPEG."""
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
        if rng.random() < 0.7:
            gray = photo_of_paper(coverage, rng)
        else:
            gray = make_digits.plain(coverage)
        path = folder / f"{'_'.join(texts)}__{i:04d}.{'jpg' if i % 2 else 'png'}"
        _save(path, gray, rng)
        paths.append(path)
    return paths


def main(argv=None):
    sys.path.insert(0, str(ROOT))
    from tinynet import data

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--split", choices=("train", "test"), default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data")
    args = p.parse_args(argv)
    x_train, y_train, x_test, y_test = data.load_mnist(args.data)
    images, labels = (x_test, y_test) if args.split == "test" else (x_train, y_train)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    write_user_digits(images, labels, out / "digits", rng, args.count)
    write_numbers_and_pages(images, labels, out / "pages", rng, args.count)
    print(f"wrote {args.count} digits and {args.count} numbers and pages under {out}")


if __name__ == "__main__":
    main()
