"""How well does `tinynet.vision` prepare real images for the MNIST network?

Three measurements, each through `load_image` + `to_mnist` (or `split_digits`):

(a) seed digits: the 19 paint-program digits in ../shared/data/seed-digits (labels.csv);
    target at least 18 correct.
(b) the project's digits/: every single digit (label = first character of the file name) and
    every number (``number_2025*.png`` = 2025) must be read correctly.
(c) MNIST's own test images, inverted (dark on light), resized by a random factor, padded
    onto a larger canvas at a random position, saved as PNG and as JPEG, then read back and
    normalised: the accuracy must stay within 0.3 points of the accuracy on the raw test set.

Usage:
    python benchmarks/vision_accuracy.py [--model weights/mnist.npz] [--data DIR]
        [--seed-digits DIR] [--digits DIR] [--count 10000]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tinynet  # noqa: E402
from tinynet import vision  # noqa: E402
from tinynet.errors import TinynetError  # noqa: E402

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}


def seed_digits(predict, folder: Path) -> tuple[int, int, list[str]]:
    """(correct, total, lines) for the seed digits listed in folder/labels.csv."""
    with open(folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    correct, lines = 0, []
    for row in rows:
        guess, confidence = read_digit(predict, folder / row["file"])
        ok = guess == int(row["label"])
        correct += ok
        lines.append(f"  {row['file']:<14} label {row['label']}  read {guess} "
                     f"({confidence:.2f}) {'ok' if ok else 'WRONG'}")
    return correct, len(rows), lines


def read_digit(predict, path: Path) -> tuple[int, float]:
    """(predicted digit, its probability) for one image file."""
    probs = predict(vision.to_mnist(vision.load_image(path))[None])[0]
    return int(probs.argmax()), float(probs.max())


def read_number(predict, path: Path) -> str:
    """The number written in an image file, as a string of digits."""
    digits = vision.split_digits(vision.load_image(path))
    probs = predict(np.stack(digits))
    return "".join(str(int(d)) for d in probs.argmax(axis=1))


def expected_label(path: Path) -> str:
    """'number_2025_photo.jpg' -> '2025'; '7_thin_white-bg.png' -> '7'."""
    stem = path.stem
    if stem.startswith("number_"):
        return stem.split("_")[1]
    return stem[0]


def project_digits(predict, folder: Path) -> tuple[int, int, list[str]]:
    """(correct, total, lines) over every image in the project's digits/ folder."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    correct, lines = 0, []
    for path in files:
        want = expected_label(path)
        try:
            got = read_number(predict, path) if len(want) > 1 or path.stem.startswith(
                "number_") else str(read_digit(predict, path)[0])
        except TinynetError as exc:
            got = f"error: {exc}"
        ok = got == want
        correct += ok
        if not ok:
            lines.append(f"  {path.name}: expected {want}, read {got}")
    return correct, len(files), lines


def disguise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit made to look like a user's file: dark on light, rescaled, padded."""
    scale = rng.uniform(1.0, 5.0)
    side = max(8, round(28 * scale))
    big = cv2.resize(255 - image, (side, side), interpolation=cv2.INTER_CUBIC)
    height = side + int(rng.integers(4, side + 8))
    width = side + int(rng.integers(4, 2 * side + 8))
    canvas = np.full((height, width), 255, np.uint8)
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    canvas[top:top + side, left:left + side] = big
    return canvas


def mnist_gap(predict, images, labels, count: int, seed: int = 0) -> dict:
    """Accuracy on the raw test images vs. the same images disguised, saved and normalised."""
    rng = np.random.default_rng(seed)
    images, labels = images[:count], labels[:count]
    raw = (predict(images.astype(np.float32) / 255).argmax(axis=1) == labels).mean()
    results = {"raw": 100 * raw}
    with tempfile.TemporaryDirectory() as tmp:
        for ext, params in ((".png", []), (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])):
            prepared = np.empty((len(images), 28, 28), np.float32)
            for i, image in enumerate(images):
                path = os.path.join(tmp, f"{i}{ext}")
                cv2.imwrite(path, disguise(image, rng), params)
                prepared[i] = vision.to_mnist(vision.load_image(path))
            accuracy = (predict(prepared).argmax(axis=1) == labels).mean()
            results[ext.lstrip(".")] = 100 * accuracy
    return results


def load_mnist_test(data_dir):
    """MNIST test images and labels through tinynet.data."""
    _, _, x_test, y_test = tinynet.data.load_mnist(data_dir, download=False)
    return x_test, y_test


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "mnist.npz"))
    parser.add_argument("--data", default=os.environ.get("TINYNET_DATA"),
                        help="MNIST folder (default: $TINYNET_DATA)")
    parser.add_argument("--seed-digits", default=None,
                        help="default: seed-digits next to the MNIST folder")
    parser.add_argument("--digits", default=str(ROOT / "digits"))
    parser.add_argument("--count", type=int, default=10000,
                        help="MNIST test images used for (c)")
    args = parser.parse_args(argv)
    predict = tinynet.load(args.model).predict
    seed_dir = Path(args.seed_digits) if args.seed_digits else (
        Path(args.data).parent / "seed-digits" if args.data else
        ROOT.parent / "shared" / "data" / "seed-digits")
    return run(predict, seed_dir, Path(args.digits), args.data, args.count)


def run(predict, seed_dir: Path, digits_dir: Path, data_dir, count: int) -> int:
    """Print the three measurements; exit status 0 when every target is met."""
    met = True
    correct, total, lines = seed_digits(predict, seed_dir)
    print(f"(a) seed digits: {correct}/{total} correct (target >= {total - 1})")
    print("\n".join(lines))
    met &= correct >= total - 1

    correct, total, lines = project_digits(predict, digits_dir)
    print(f"(b) digits/: {correct}/{total} read correctly (target: all)")
    print("\n".join(lines) if lines else "  all correct")
    met &= correct == total

    start = time.perf_counter()
    images, labels = load_mnist_test(data_dir)
    result = mnist_gap(predict, images, labels, count)
    gap = result["raw"] - min(result["png"], result["jpg"])
    print(f"(c) MNIST test, first {min(count, len(images))} images: raw {result['raw']:.2f}%, "
          f"disguised PNG {result['png']:.2f}%, JPEG {result['jpg']:.2f}%; "
          f"worst gap {gap:.2f} points (target <= 0.30) [{time.perf_counter() - start:.0f} s]")
    met &= gap <= 0.3
    print("all targets met" if met else "SOME TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
