"""Does the recognizer read users' digits, and does it say so when an image holds no digit?

Everything is measured through the public API, the paths users run: `tinynet.load`,
`model.predict` and `tinynet.read_many`.

(a) MNIST test digits (all 10,000 by default): accuracy of the argmax of `model.predict` (an
    argmax of class 10, "not a digit", counts as wrong), the share the reader would reject as
    not a digit alone (`tinynet.reader.rejected`, with the feature distance when the model
    has one), and the expected calibration error (15 bins).
(b) pen-style digits: MNIST test digits re-drawn as users' pens make them
    (`reading_sets.write_pen_style_digits`), read as files: exact readings against the
    model's raw accuracy on the same 28x28 digits, the gap in points, and the shares rejected
    or read as several digits.
(c) the project's digits/ folder: how many are read right, how many rejected.
(d) held-out non-digits (`reading_sets.write_non_digits`: Hershey-font letters and symbols,
    doodles): the share answered "not a digit" (no text, and glyphs in `not_digits`), per kind.
(e) calibration of the readings of (b) and (c): accuracy of those flagged `unsure` against
    the others, and the calibration error of `Reading.confidence` on (b).

A model with 10 outputs cannot reject anything, so its rejection figures are 0. The last line
printed is JSON with the key figures (also written to --out-json).

    python benchmarks/recognizer_accuracy.py [--model weights/mnist.npz] [--count 2000]
        [--non-digits 1000] [--mnist 10000] [--seed 0] [--data DIR] [--digits DIR]
        [--out-json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reading_sets import (  # noqa: E402
    label_of,
    non_digit_kind,
    write_non_digits,
    write_pen_style_digits,
)

import tinynet  # noqa: E402
from tinynet.calibration import calibration_error, expected_calibration_error  # noqa: E402
from tinynet.reader import NOT_A_DIGIT, predict, rejected  # noqa: E402

ECE_BINS = 15


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------
# What a reading says
# --------------------------------------------------------------------------------------------

def not_digits(result) -> list:
    """The glyphs a reading judged not a digit ([] for a ReadError)."""
    return result.not_digits if result.ok else []


def answered_not_a_digit(result) -> bool:
    """The reader's "no digit in this image": no text, and glyphs judged not a digit."""
    return result.ok and result.text == "" and bool(not_digits(result))


def percent(part, whole) -> float:
    return 100.0 * part / whole if whole else 0.0


# --------------------------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------------------------

def mnist_figures(model, images, labels) -> dict:
    """(a): raw accuracy, rejections and ECE of `model.predict` on MNIST test digits; a
    model with a feature distance also rejects the digits it finds far from every digit."""
    probabilities, far = predict(model, tinynet.data.to_float(images))
    predicted = probabilities.argmax(axis=1)
    refused = rejected(probabilities) | far
    return {"model_outputs": int(probabilities.shape[1]), "mnist_count": len(labels),
            "mnist_accuracy_pct": percent(int((predicted == labels).sum()), len(labels)),
            "mnist_rejected_pct": percent(int(refused.sum()), len(labels)),
            "mnist_ece": expected_calibration_error(probabilities, labels, bins=ECE_BINS)}


def read_digit_folder(model, folder: Path) -> list[tuple[str, str, object]]:
    """(file name, expected text, Reading or ReadError) for every image of a folder."""
    return [(Path(r.source).name, label_of(Path(r.source)), r)
            for r in tinynet.read_many([folder], model)]


def digit_set_figures(results) -> dict:
    """Counts over readings of images that hold digits: right, rejected, several, errors."""
    figures = {"total": len(results), "correct": 0, "rejected": 0, "several": 0, "errors": 0}
    for _, want, result in results:
        figures["correct"] += result.ok and result.text == want
        figures["rejected"] += answered_not_a_digit(result)
        figures["several"] += result.ok and len(want) == 1 and len(result.digits) > 1
        figures["errors"] += not result.ok
    return figures


def unsure_figures(results) -> dict:
    """(e): how often readings flagged `unsure`, and the others, are right."""
    counts = Counter()
    for _, want, result in results:
        if not result.ok:             # a ReadError is neither sure nor unsure
            continue
        flag = "unsure" if result.unsure else "sure"
        counts[flag] += 1
        counts[f"{flag}_correct"] += result.text == want
    return {"unsure_count": counts["unsure"],
            "unsure_correct_pct": percent(counts["unsure_correct"], counts["unsure"]),
            "sure_count": counts["sure"],
            "sure_correct_pct": percent(counts["sure_correct"], counts["sure"])}


def pen_figures(model, images, labels, folder: Path, seed: int) -> tuple[dict, list]:
    """(b): the digits written as pen-style files and read back, against their raw accuracy."""
    write_pen_style_digits(folder, images, labels, seed)
    raw = model.predict(tinynet.data.to_float(images)).argmax(axis=1) == labels
    results = read_digit_folder(model, folder)
    counts = digit_set_figures(results)
    total = counts["total"]
    by_pen = defaultdict(lambda: [0, 0])
    for name, want, result in results:
        pen = Path(name).stem.split("_")[2]
        by_pen[pen][0] += result.ok and result.text == want
        by_pen[pen][1] += 1
    read = percent(counts["correct"], total)
    readings = [(r.confidence, r.text == want) for _, want, r in results if r.ok]
    figures = {"pen_count": total, "pen_raw_pct": percent(int(raw.sum()), len(raw)),
               "pen_read_pct": read,
               "pen_gap_points": percent(int(raw.sum()), len(raw)) - read,
               "pen_rejected_pct": percent(counts["rejected"], total),
               "pen_several_pct": percent(counts["several"], total),
               "pen_errors": counts["errors"],
               "pen_read_by_pen_pct": {pen: percent(ok, n) for pen, (ok, n)
                                       in sorted(by_pen.items())},
               "pen_reading_ece": calibration_error(*zip(*readings), bins=ECE_BINS)
               if readings else 0.0}
    return figures, results


def project_digit_figures(model, folder: Path) -> tuple[dict, list]:
    """(c): the project's digits/ folder."""
    results = read_digit_folder(model, folder)
    counts = digit_set_figures(results)
    return {"digits_total": counts["total"], "digits_correct": counts["correct"],
            "digits_rejected": counts["rejected"]}, results


def non_digit_figures(model, folder: Path, count: int, seed: int) -> dict:
    """(d): non-digit images written and read: answered "not a digit", per kind."""
    write_non_digits(folder, count, seed)
    kinds = defaultdict(Counter)
    for result in tinynet.read_many([folder], model):
        tally = kinds[non_digit_kind(result.source)]
        tally["total"] += 1
        tally["answered"] += answered_not_a_digit(result)
        tally["no_digit_found"] += not result.ok       # e.g. the layout saw no writing
        if result.ok and result.text:
            tally["read_as_digits"] += 1
            tally[f"text:{result.text}"] += 1
    total = sum(t["total"] for t in kinds.values())

    def share(key):
        return percent(sum(t[key] for t in kinds.values()), total)

    return {"non_digit_count": total,
            "non_digit_answered_pct": share("answered"),
            "non_digit_no_digit_found_pct": share("no_digit_found"),
            "non_digit_read_as_digits_pct": share("read_as_digits"),
            "non_digit_answered_by_kind_pct": {
                kind: percent(t["answered"], t["total"]) for kind, t in sorted(kinds.items())},
            "_kinds": kinds}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def most_read_as(tally: Counter) -> str:
    """The text a kind of non-digit is most often read as, e.g. '7 (12)', or '-'."""
    texts = Counter({k[5:]: v for k, v in tally.items() if k.startswith("text:")})
    if not texts:
        return "-"
    text, times = texts.most_common(1)[0]
    return f"{text} ({times})"


def shown(result) -> str:
    """What a reading says, for a list of misses: '"17"', '"" (not a digit)', 'error: ...'."""
    if not result.ok:
        return f"error: {result.reason}"
    return f'"{result.text}"' + (" (not a digit)" if answered_not_a_digit(result) else "")


def print_report(f: dict, pen_results: list, digit_results: list) -> None:
    """The figures as a readable table."""
    print(f"model: {f['model_outputs']} outputs"
          + ("" if f["model_outputs"] > NOT_A_DIGIT else " (cannot say 'not a digit')"))
    print(f"(a) MNIST test ({f['mnist_count']}): accuracy {f['mnist_accuracy_pct']:.2f}%, "
          f"rejected as not a digit {f['mnist_rejected_pct']:.2f}%, "
          f"ECE {f['mnist_ece']:.4f} ({ECE_BINS} bins)")
    print(f"(b) pen-style digits ({f['pen_count']}): read exactly {f['pen_read_pct']:.2f}% "
          f"vs raw {f['pen_raw_pct']:.2f}% on the same digits (gap "
          f"{f['pen_gap_points']:+.2f} points); rejected {f['pen_rejected_pct']:.2f}%, "
          f"read as several digits {f['pen_several_pct']:.2f}%, errors {f['pen_errors']}")
    print("    by pen: " + ", ".join(f"{pen} {pct:.1f}%"
                                     for pen, pct in f["pen_read_by_pen_pct"].items()))
    misses = [f"{name} read {shown(r)}" for name, want, r in pen_results
              if not (r.ok and r.text == want)]
    if misses:
        print("    misses, first 10: " + "; ".join(misses[:10]))
    print(f"(c) digits/: {f['digits_correct']}/{f['digits_total']} right, "
          f"{f['digits_rejected']} rejected")
    for name, want, r in digit_results:
        if not (r.ok and r.text == want):
            print(f"    {name}: expected {want}, read {shown(r)}")
    print(f"(d) non-digits ({f['non_digit_count']}): answered 'not a digit' "
          f"{f['non_digit_answered_pct']:.1f}%, 'no digit found' (read error) "
          f"{f['non_digit_no_digit_found_pct']:.1f}%, read as digits "
          f"{f['non_digit_read_as_digits_pct']:.1f}%")
    print(f"    {'kind':<20}{'images':>7}{'not a digit':>13}{'no digit found':>16}"
          f"{'read as digits':>16}  most often read as")
    for kind, t in sorted(f["_kinds"].items()):
        print(f"    {kind:<20}{t['total']:>7}{percent(t['answered'], t['total']):>12.1f}%"
              f"{percent(t['no_digit_found'], t['total']):>15.1f}%"
              f"{percent(t['read_as_digits'], t['total']):>15.1f}%  {most_read_as(t)}")
    print(f"(e) readings of (b) and (c): unsure {f['unsure_count']}, of which "
          f"{f['unsure_correct_pct']:.1f}% right; sure {f['sure_count']}, of which "
          f"{f['sure_correct_pct']:.1f}% right; ECE of Reading.confidence on (b) "
          f"{f['pen_reading_ece']:.4f}")


def key_figures(f: dict) -> dict:
    """The figures for the JSON line: private entries dropped, floats rounded."""
    def rounded(value):
        if isinstance(value, float):
            return round(value, 4)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        return value
    return {k: rounded(v) for k, v in f.items() if not k.startswith("_")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "mnist.npz"))
    parser.add_argument("--data", default=os.environ.get("TINYNET_DATA"),
                        help="MNIST folder (default: $TINYNET_DATA)")
    parser.add_argument("--digits", default=str(ROOT / "digits"))
    parser.add_argument("--mnist", type=int, default=10000, help="MNIST test digits for (a)")
    parser.add_argument("--count", type=int, default=2000, help="pen-style digits for (b)")
    parser.add_argument("--non-digits", type=int, default=1000, help="non-digits for (d)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-json", help="also write the key figures to this file")
    args = parser.parse_args(argv)

    model = tinynet.load(args.model)
    _, _, images, labels = tinynet.data.load_mnist(args.data, download=False, parts=("test",))
    figures = mnist_figures(model, images[:args.mnist], labels[:args.mnist])
    # the pen-style digits are a seeded sample of the test set, not always its first ones
    pick = np.sort(np.random.default_rng(args.seed).choice(
        len(images), min(args.count, len(images)), replace=False))
    with tempfile.TemporaryDirectory() as tmp:
        pen, pen_results = pen_figures(model, images[pick], labels[pick], Path(tmp) / "pen",
                                       args.seed)
        figures.update(pen)
        digits, digit_results = project_digit_figures(model, Path(args.digits))
        figures.update(digits)
        figures.update(non_digit_figures(model, Path(tmp) / "non-digits", args.non_digits,
                                         args.seed + 1))
    figures.update(unsure_figures(pen_results + digit_results))
    print_report(figures, pen_results, digit_results)
    key = key_figures(figures)
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(key, indent=1) + "\n")
    print(json.dumps(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
