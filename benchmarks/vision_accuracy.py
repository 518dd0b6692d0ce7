"""How well does the reader (`tinynet.read` / `read_many`) read users' images, and how fast?

Everything goes through the same path as `examples/mnist.py`: `read_many` for folders, and
the CLI itself, as a subprocess, for the timings.

(a) seed digits: the 19 paint-program digits in ../shared/data/seed-digits (labels.csv).
(b) the project's digits/: every single digit and number must be read correctly.
(c) user-style MNIST: the first --count MNIST *test* digits written as users' files (dark on
    white, 28-112 px, PNG and JPEG, some on larger canvases; benchmarks/reading_sets.py):
    accuracy within 0.3 points of the model's on the same raw digits, and at most 2 per 2,000
    read as more than one digit.
(d) numbers and pages (generated from MNIST test digits and pen-stroke digits, 1-5 lines):
    at least 95% read exactly, at least 90% of the multi-line ones.
(e) speed and memory of `examples/mnist.py`: the folder of (c) (target: 10 s wall and 500 MB
    peak for 2,000 images, figure included), the main job on digits/ (warm; target 1.0 s),
    and one 12-megapixel phone-style photo through `tinynet.read` (target under 1 s).
(f) numbers written on the rules of ruled and squared paper (rules faint to nearly as dark
    as the ink), photographed turned by up to 4 degrees: the share read exactly, reported.
(g) one or two short numbers (digits 3-6 mm tall) on whole A4 pages scanned at 300 dpi: the
    share read exactly, reported.
(h) numbers and pages as in (d), each page turned by 5 to 15 degrees: the share read
    exactly, reported.

Usage:
    python benchmarks/vision_accuracy.py [--model weights/mnist.npz] [--data DIR]
        [--seed-digits DIR] [--digits DIR] [--count 2000] [--pages 600] [--lined 300]
        [--scans 100] [--turned 300] [--no-timing]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reading_sets import (  # noqa: E402
    label_of,
    write_lined_pages,
    write_numbers_and_pages,
    write_scanned_pages,
    write_user_digits,
)

import tinynet  # noqa: E402


def seed_digits(model, folder: Path) -> tuple[int, int, list[str]]:
    """(correct, total, lines) for the seed digits listed in folder/labels.csv."""
    with open(folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    correct, lines = 0, []
    for row in rows:
        try:
            reading = tinynet.read(folder / row["file"], model)
            got, confidence = reading.text, reading.confidence
        except tinynet.TinynetError as exc:
            got, confidence = f"error: {exc}", 0.0
        ok = got == row["label"]
        correct += ok
        lines.append(f"  {row['file']:<14} label {row['label']}  read {got} "
                     f"({confidence:.2f}) {'ok' if ok else 'WRONG'}")
    return correct, len(rows), lines


def score_folder(model, folder: Path) -> dict:
    """Exact readings over a folder through read_many, with the misses listed."""
    total = correct = multi = multi_ok = several = 0
    misses = []
    for result in tinynet.read_many([folder], model):
        want = label_of(Path(result.source))
        got = result.text if result.ok else f"error: {result.reason}"
        total += 1
        correct += got == want
        if "/" in want:
            multi += 1
            multi_ok += got == want
        if result.ok and len(want) == 1 and len(result.digits) > 1:
            several += 1
        if got != want:
            misses.append(f"  {result.name}: expected {want}, read {got}")
    return {"total": total, "correct": correct, "multi": multi, "multi_ok": multi_ok,
            "several": several, "misses": misses}


def raw_accuracy(model, images, labels) -> float:
    return 100 * float((model.predict(tinynet.data.to_float(images)).argmax(axis=1)
                        == labels).mean())


# Runs examples/mnist.py in this child process and reports the child's own peak memory
# (ru_maxrss of RUSAGE_CHILDREN would be the largest of all children so far, not this one's).
_CHILD = """
import resource, runpy, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass
finally:
    print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def cli_run(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one `examples/mnist.py` run in a fresh process."""
    command = [sys.executable, "-c", _CHILD, str(ROOT / "examples" / "mnist.py"), "--no-show",
               *args]
    env = dict(os.environ, MPLBACKEND="Agg")
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=env, check=False)
    wall = time.perf_counter() - start
    peaks = [int(line.split()[1]) for line in done.stderr.splitlines()
             if line.startswith("peak_kb ")]
    return wall, (peaks[-1] / 1024 if peaks else float("nan"))


def phone_photo(folder: Path, images, labels) -> Path:
    """A 4000x3000 JPEG of a page of numbers, as a phone would take it."""
    rng = np.random.default_rng(7)
    page = write_numbers_and_pages(images, labels, folder / "page", rng, count=1)[0]
    gray = cv2.imread(str(page), cv2.IMREAD_GRAYSCALE)
    scale = min(4000 / gray.shape[1], 3000 / gray.shape[0])
    big = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    canvas = np.full((3000, 4000), int(np.median(gray)), np.uint8)
    canvas[:big.shape[0], :big.shape[1]] = big
    noisy = np.clip(canvas + rng.normal(0, 4, canvas.shape), 0, 255).astype(np.uint8)
    path = folder / (label_of(page).replace("/", "_") + "__photo.jpg")
    cv2.imwrite(str(path), cv2.cvtColor(noisy, cv2.COLOR_GRAY2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def load_mnist_test(data_dir):
    """MNIST test images and labels through tinynet.data."""
    _, _, x_test, y_test = tinynet.data.load_mnist(data_dir, download=False)
    return x_test, y_test


def reported_share(model, folder: Path, title: str) -> float:
    """Print, and return, the share of a folder's images read exactly: a figure reported
    with no target."""
    result = score_folder(model, folder)
    exact = 100 * result["correct"] / result["total"]
    print(f"{title} ({result['total']}): {exact:.1f}% read exactly (reported; no target)")
    print("\n".join(result["misses"][:10]))
    return exact


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "mnist.npz"))
    parser.add_argument("--data", default=os.environ.get("TINYNET_DATA"),
                        help="MNIST folder (default: $TINYNET_DATA)")
    parser.add_argument("--seed-digits", default=None,
                        help="default: seed-digits next to the MNIST folder")
    parser.add_argument("--digits", default=str(ROOT / "digits"))
    parser.add_argument("--count", type=int, default=2000, help="user-style MNIST digits")
    parser.add_argument("--pages", type=int, default=600, help="numbers-and-pages images")
    parser.add_argument("--lined", type=int, default=300,
                        help="numbers on ruled and squared paper")
    parser.add_argument("--scans", type=int, default=100,
                        help="short numbers on scanned A4 pages")
    parser.add_argument("--turned", type=int, default=300,
                        help="numbers and pages turned by 5-15 degrees")
    parser.add_argument("--no-timing", action="store_true", help="skip the CLI timings")
    args = parser.parse_args(argv)
    model = tinynet.load(args.model)
    seed_dir = Path(args.seed_digits) if args.seed_digits else (
        Path(args.data).parent / "seed-digits" if args.data else
        ROOT.parent / "shared" / "data" / "seed-digits")
    return run(model, args, seed_dir)


def run(model, args, seed_dir: Path) -> int:
    """Print the measurements; exit status 0 when every target is met."""
    met, figures = True, {}
    if (seed_dir / "labels.csv").exists():
        correct, total, lines = seed_digits(model, seed_dir)
        print(f"(a) seed digits: {correct}/{total} correct (target: all)")
        print("\n".join(lines))
        met &= correct == total
        figures["seed_digits"] = f"{correct}/{total}"

    result = score_folder(model, Path(args.digits))
    print(f"(b) digits/: {result['correct']}/{result['total']} read correctly (target: all)")
    print("\n".join(result["misses"]) if result["misses"] else "  all correct")
    met &= result["correct"] == result["total"]
    figures["digits"] = f"{result['correct']}/{result['total']}"

    images, labels = load_mnist_test(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        count = min(args.count, len(images))
        write_user_digits(images, labels, tmp / "user", rng, count)
        raw = raw_accuracy(model, images[:count], labels[:count])
        start = time.perf_counter()
        result = score_folder(model, tmp / "user")
        seconds = time.perf_counter() - start
        read = 100 * result["correct"] / result["total"]
        limit = max(2, round(2 * count / 2000))
        print(f"(c) user-style MNIST test digits ({count}): raw {raw:.2f}%, read as files "
              f"{read:.2f}% (gap {raw - read:.2f} points, target <= 0.30); read as several "
              f"digits: {result['several']} (target <= {limit}) [{seconds:.1f} s]")
        print("\n".join(result["misses"][:20]))
        met &= raw - read <= 0.3 and result["several"] <= limit
        figures.update(user_raw=raw, user_read=read, user_several=result["several"])

        write_numbers_and_pages(images, labels, tmp / "pages", rng, args.pages)
        result = score_folder(model, tmp / "pages")
        exact = 100 * result["correct"] / result["total"]
        multi = 100 * result["multi_ok"] / max(1, result["multi"])
        print(f"(d) numbers and pages ({result['total']}, {result['multi']} with several "
              f"lines): {exact:.1f}% read exactly (target >= 95), multi-line {multi:.1f}% "
              f"(target >= 90)")
        print("\n".join(result["misses"][:20]))
        met &= exact >= 95 and multi >= 90
        figures.update(pages_exact=exact, pages_multi_line=multi)

        if not args.no_timing:
            cli_run(["--load", args.model, "--digits", args.digits])     # warm the caches
            job = min(cli_run(["--load", args.model, "--digits", args.digits])[0]
                      for _ in range(3))
            folder_wall, folder_rss = cli_run(["--load", args.model, "--digits",
                                               str(tmp / "user"), "--figure",
                                               str(tmp / "figure.png")])
            photo = phone_photo(tmp, images, labels)
            tinynet.read(photo, model)
            start = time.perf_counter()
            reading = tinynet.read(photo, model)
            photo_seconds = time.perf_counter() - start
            print(f"(e) main job on digits/: {job:.2f} s warm (target 1.0); folder of {count} "
                  f"images: {folder_wall:.1f} s, peak {folder_rss:.0f} MB (targets 10 s, "
                  f"500 MB for 2,000); 12 MP photo: {photo_seconds:.2f} s (target < 1), "
                  f"read {reading.text!r} for {label_of(photo)!r}")
            met &= job <= 1.0 and photo_seconds < 1.0
            met &= folder_wall <= 10 * count / 2000 and folder_rss <= 500
            figures.update(main_job_s=job, folder_s=folder_wall, folder_peak_mb=folder_rss,
                           photo_s=photo_seconds)

        write_lined_pages(images, labels, tmp / "lined", np.random.default_rng(7), args.lined)
        figures["lined_exact"] = reported_share(
            model, tmp / "lined", "(f) numbers on ruled and squared paper photographed askew")
        write_scanned_pages(images, labels, tmp / "scans", np.random.default_rng(10), args.scans)
        figures["scans_exact"] = reported_share(
            model, tmp / "scans", "(g) short numbers on whole A4 pages scanned at 300 dpi")
        write_numbers_and_pages(images, labels, tmp / "turned", np.random.default_rng(11),
                                args.turned, turn=(5, 15))
        figures["turned_exact"] = reported_share(
            model, tmp / "turned", "(h) numbers and pages photographed turned by 5-15 degrees")
    print("all targets met" if met else "SOME TARGETS MISSED")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                      for k, v in figures.items()}))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
