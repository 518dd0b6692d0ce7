"""examples/mnist.py run as a user runs it: a subprocess."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tinynet import models

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "mnist.py"
SHIPPED = ROOT / "weights" / "mnist.npz"
SEED_DIGITS = ROOT.parent / "shared" / "data" / "seed-digits"
LINE = re.compile(r"^(?P<file>\S+): (?P<pred>\d+) \((?P<conf>[\d.]+)%")


def run(*args, stdin=subprocess.DEVNULL):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, stdin=stdin, env=env, timeout=300)


def predictions(stdout):
    return {m["file"]: m["pred"] for m in map(LINE.match, stdout.splitlines()) if m}


@pytest.fixture
def small_model(tmp_path):
    path = tmp_path / "small.npz"
    models.mlp(np.random.default_rng(0), hidden=(8,)).save(path)
    return path


@pytest.fixture
def two_images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, thickness in (("one_1.png", 3), ("seven_7.png", 2)):
        img = np.full((56, 56), 255, np.uint8)
        cv2.line(img, (28, 8), (28, 48), 0, thickness)
        if "seven" in name:
            cv2.line(img, (14, 8), (40, 8), 0, thickness)
        cv2.imwrite(str(folder / name), img)
    return folder


def test_load_predicts_every_image_and_saves_a_figure(small_model, two_images, tmp_path):
    figure = tmp_path / "fig.png"
    r = run("--load", small_model, "--digits", two_images, "--figure", figure, "--no-show")
    assert r.returncode == 0, r.stderr
    assert set(predictions(r.stdout)) == {"one_1.png", "seven_7.png"}
    assert f"figure saved to {figure}" in r.stdout
    assert figure.stat().st_size > 1000
    assert "Traceback" not in r.stderr


def test_a_bad_image_is_reported_and_the_rest_still_run(small_model, two_images, tmp_path):
    (two_images / "broken.png").write_bytes(b"not a png at all")
    r = run("--load", small_model, "--digits", two_images, "--figure", tmp_path / "f.png",
            "--no-show")
    assert r.returncode == 1
    assert "broken.png" in r.stderr
    assert set(predictions(r.stdout)) == {"one_1.png", "seven_7.png"}
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(not SHIPPED.exists(), reason="weights/mnist.npz is not in this checkout")
def test_without_flags_and_without_a_terminal_it_loads_the_shipped_model(tmp_path):
    r = run("--figure", tmp_path / "f.png", "--no-show")
    assert r.returncode == 0, r.stderr
    assert f"loaded {SHIPPED}" in r.stdout
    assert len(predictions(r.stdout)) >= 10


@pytest.mark.skipif(not SHIPPED.exists(), reason="weights/mnist.npz is not in this checkout")
@pytest.mark.skipif(not SEED_DIGITS.exists(), reason="../shared/data/seed-digits not present")
def test_shipped_model_reads_the_seed_digits(tmp_path):
    with open(SEED_DIGITS / "labels.csv") as f:
        labels = {row["file"]: row["label"] for row in csv.DictReader(f)}
    r = run("--load", SHIPPED, "--digits", SEED_DIGITS, "--figure", tmp_path / "f.png",
            "--no-show")
    assert r.returncode == 0, r.stderr
    got = predictions(r.stdout)
    correct = sum(got.get(name) == label for name, label in labels.items())
    assert correct >= 18, f"{correct}/19 seed digits right:\n{r.stdout}"


def test_unknown_flag_is_a_usage_error():
    r = run("--bogus")
    assert r.returncode == 2
    assert "usage:" in r.stderr and "--bogus" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_value_is_a_usage_error():
    r = run("--load")
    assert r.returncode == 2
    assert "expected one argument" in r.stderr


def test_loading_a_missing_model_fails_cleanly(tmp_path):
    r = run("--load", tmp_path / "nope.npz", "--no-show")
    assert r.returncode == 1
    assert "nope.npz: no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_out_is_refused_before_training(tmp_path):
    r = run("--train", "--out", tmp_path / "missing-folder" / "m.npz")
    assert r.returncode == 2
    assert "missing-folder" in r.stderr and "does not exist" in r.stderr


def test_a_folder_without_images(small_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("--load", small_model, "--digits", empty, "--no-show")
    assert r.returncode == 1
    assert "no images in this folder" in r.stderr


def test_evaluate_prints_accuracy_per_class_and_confusion_matrix(small_model, two_images,
                                                                 tmp_path, mnist):
    r = run("--load", small_model, "--evaluate", "--digits", two_images,
            "--figure", tmp_path / "predictions.png", "--no-show")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    accuracy = float(re.search(r"test accuracy ([\d.]+)% on 10000 images", out)[1])
    assert 0 <= accuracy <= 100
    assert re.search(r"per class: 0: [\d.]+%.* 9: [\d.]+%", out)
    rows = [line for line in out.splitlines() if re.match(r"^\s+\d(\s+\d+){10}$", line)]
    assert len(rows) == 10
    assert sum(int(n) for row in rows for n in row.split()[1:]) == 10000
    assert (tmp_path / "evaluation.png").stat().st_size > 10000
