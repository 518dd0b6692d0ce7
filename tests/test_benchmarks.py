"""Benchmark scripts keep working (smoke runs in seconds), and the generated test sets of
benchmarks/reading_sets.py are labelled, well-formed and reproducible."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

def test_compare_torch_smoke():
    script = ROOT / "benchmarks" / "compare_torch.py"
    code = ("import runpy, sys\n"
            f"sys.argv = [{str(script)!r}, '--smoke']\n"
            f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
            "assert 'torch' not in sys.modules, 'smoke mode imported torch'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    last = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("mlp_train_s_per_epoch", "cnn_train_s_per_epoch", "cnn_infer_images_per_s",
                "cnn_latency_ms", "cnn_train_gflops"):
        assert last[key] > 0, key
    assert last["mode"] == "smoke" and last["torch"] is None
    machine = last["machine"]                   # what a second core adds, measured first
    assert len(machine["copy_gbps"]) == 2 and min(machine["copy_gbps"]) > 0
    assert len(machine["sgemm_gflops"]) == 2


# --------------------------------------------------------------------------------------------
# The generated test sets of benchmarks/reading_sets.py and the recognizer benchmark
# --------------------------------------------------------------------------------------------

sys.path.insert(0, str(ROOT / "benchmarks"))
import reading_sets  # noqa: E402

NON_DIGIT_NAME = re.compile(r"nondigit_\d{4}_(letter-[A-Za-z]|symbol-[a-z]+|doodle-[a-z-]+)"
                            r"\.(png|jpg)")


def test_pen_style_digits_are_files_labelled_like_user_digits(tmp_path, mnist):
    _, _, images, labels = mnist
    paths = reading_sets.write_pen_style_digits(tmp_path, images[:20], labels[:20], seed=3)
    assert sorted(paths) == sorted(tmp_path.iterdir())
    assert [reading_sets.label_of(p) for p in paths] == [str(int(d)) for d in labels[:20]]
    assert {p.suffix for p in paths} == {".png", ".jpg"}
    assert {p.stem.split("_")[2] for p in paths} <= set(reading_sets.PEN_WIDTHS)
    for path in paths:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        assert 28 <= gray.shape[0] <= 3 * 164, path.name
        paper, ink = np.percentile(gray, 90), gray.min()
        assert paper > 150 and ink < paper - 60, path.name      # dark ink on light paper


def test_pen_style_digits_are_reproducible(tmp_path, mnist):
    _, _, images, labels = mnist
    first = reading_sets.write_pen_style_digits(tmp_path / "a", images[:6], labels[:6], seed=5)
    again = reading_sets.write_pen_style_digits(tmp_path / "b", images[:6], labels[:6], seed=5)
    other = reading_sets.write_pen_style_digits(tmp_path / "c", images[:6], labels[:6], seed=6)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]


def test_lined_pages_are_labelled_lines_of_digits_on_askew_rules(tmp_path, mnist):
    from tinynet import layout
    _, _, images, labels = mnist
    rng = np.random.default_rng(4)
    paths = reading_sets.write_lined_pages(images[:500], labels[:500], tmp_path, rng, 8)
    assert sorted(paths) == sorted(tmp_path.iterdir())
    assert {p.suffix for p in paths} == {".png", ".jpg"}
    turned = 0
    for path in paths:
        assert re.fullmatch(r"\d+(/\d+){0,3}", reading_sets.label_of(path)), path.name
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        paper = np.percentile(gray, 75)
        mask = (gray < paper - 12).astype(np.uint8)          # the rules and the ink
        turned += layout._rules_turn(mask, layout.components(mask)[0]) != 0
    assert turned >= 6                       # turned by up to 4 degrees: rarely under 0.25
    again = reading_sets.write_lined_pages(images[:500], labels[:500], tmp_path / "again",
                                           np.random.default_rng(4), 8)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]


def test_scanned_pages_are_a4_with_a_short_labelled_number(tmp_path, mnist):
    _, _, images, labels = mnist
    paths = reading_sets.write_scanned_pages(images[:500], labels[:500], tmp_path,
                                             np.random.default_rng(2), 4)
    assert {p.suffix for p in paths} == {".png", ".jpg"}
    for path in paths:
        assert re.fullmatch(r"\d+(/\d+)?", reading_sets.label_of(path)), path.name
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        assert gray.shape == (3508, 2480)
        assert 0 < np.mean(gray < 128) < 0.002                 # a little ink on a big page


def test_non_digits_name_their_kind(tmp_path):
    paths = reading_sets.write_non_digits(tmp_path, 40, seed=2)
    assert sorted(paths) == sorted(tmp_path.iterdir())
    kinds = {"letter", "symbol"} | {f"doodle-{shape}" for shape in reading_sets.DOODLES}
    for path in paths:
        assert NON_DIGIT_NAME.fullmatch(path.name), path.name
        assert reading_sets.non_digit_kind(path) in kinds
        if reading_sets.non_digit_kind(path) == "letter":
            assert path.stem[-1] in reading_sets.LETTERS
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        assert gray is not None and min(gray.shape) >= 6
    assert {reading_sets.non_digit_kind(p).split("-")[0] for p in paths} == \
        {"letter", "symbol", "doodle"}
    with pytest.raises(ValueError):
        reading_sets.non_digit_kind(Path("7_00001_fine.png"))


def test_non_digits_are_reproducible(tmp_path):
    first = reading_sets.write_non_digits(tmp_path / "a", 8, seed=9)
    again = reading_sets.write_non_digits(tmp_path / "b", 8, seed=9)
    assert [p.name for p in first] == [p.name for p in again]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]


def test_recognizer_accuracy_smoke(tmp_path, mnist):
    """The benchmark runs end to end on tiny sets and reports figures in range."""
    out = tmp_path / "figures.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recognizer_accuracy.py"),
                          "--mnist", "200", "--count", "12", "--non-digits", "12",
                          "--out-json", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env=dict(os.environ, MPLBACKEND="Agg"))
    assert res.returncode == 0, res.stderr[-3000:]
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == last
    assert last["model_outputs"] in (10, 11)
    assert (last["mnist_count"], last["pen_count"], last["non_digit_count"]) == (200, 12, 12)
    for key in ("mnist_accuracy_pct", "mnist_rejected_pct", "pen_raw_pct", "pen_read_pct",
                "pen_rejected_pct", "pen_several_pct", "non_digit_answered_pct",
                "non_digit_no_digit_found_pct", "non_digit_read_as_digits_pct",
                "unsure_correct_pct", "sure_correct_pct"):
        assert 0 <= last[key] <= 100, key
    assert last["mnist_accuracy_pct"] > 90
    assert 0 <= last["mnist_ece"] <= 1 and 0 <= last["pen_reading_ece"] <= 1
    assert last["pen_gap_points"] == pytest.approx(last["pen_raw_pct"] - last["pen_read_pct"],
                                                   abs=1e-3)
    assert 0 <= last["digits_correct"] <= last["digits_total"]
    assert last["unsure_count"] + last["sure_count"] <= 12 + last["digits_total"]
    assert all(0 <= v <= 100 for v in last["non_digit_answered_by_kind_pct"].values())
    if last["model_outputs"] == 10:      # a 10-class model cannot reject anything
        assert last["mnist_rejected_pct"] == last["non_digit_answered_pct"] == 0
