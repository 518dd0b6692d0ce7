"""examples/mnist.py run as a user runs it: a subprocess."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import encoded, png_bytes

import tinynet
from tinynet import models
from tinynet.model import META_KEY

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


def no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def paper_seven(size=56, thickness=3):
    """A dark 7 on white paper, uint8."""
    img = np.full((size, size), 255, np.uint8)
    cv2.line(img, (size // 4, size // 7), (3 * size // 4, size // 7), 0, thickness)
    cv2.line(img, (3 * size // 4, size // 7), (size // 2, 6 * size // 7), 0, thickness)
    return img


def predictions(stdout):
    return {m["file"]: m["pred"] for m in map(LINE.match, stdout.splitlines()) if m}


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


# -- issue 13: rough edges -------------------------------------------------------------------

def run_with(env_changes, *args, stdin=subprocess.DEVNULL, script=None):
    """``run`` with some environment variables set (a value of None removes one)."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("DISPLAY", None)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    command = [sys.executable, str(SCRIPT)] if script is None else [sys.executable, "-c", script]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          errors="surrogateescape", stdin=stdin, env=env, timeout=300)


def test_a_figure_name_without_extension_is_saved_and_reported_as_png(small_model, two_images,
                                                                      tmp_path):
    r = run("--load", small_model, "--digits", two_images, "--figure", tmp_path / "result",
            "--no-show")
    assert r.returncode == 0, r.stderr
    assert f"figure saved to {tmp_path / 'result.png'}\n" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "result.png", "small.npz"]


def test_a_figure_path_naming_a_folder_saves_inside_it(small_model, two_images, tmp_path):
    folder = tmp_path / "figures"
    folder.mkdir()
    r = run("--load", small_model, "--digits", two_images, "--figure", folder, "--no-show")
    assert r.returncode == 0, r.stderr
    assert f"figure saved to {folder / 'predictions.png'}\n" in r.stdout
    assert (folder / "predictions.png").stat().st_size > 1000


def test_an_unsupported_figure_extension_is_a_usage_error_before_any_work(small_model,
                                                                          two_images, tmp_path):
    r = run("--load", small_model, "--digits", two_images, "--figure", tmp_path / "f.txt",
            "--no-show")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert (f"mnist.py: error: --figure {tmp_path / 'f.txt'}: cannot save a figure as '.txt'; "
            "use one of .png") in r.stderr
    assert r.stdout == "" and not (tmp_path / "f.txt").exists()


def test_a_file_name_with_non_utf8_bytes_is_read_and_drawn(small_model, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    img = np.full((56, 56), 255, np.uint8)
    cv2.line(img, (28, 8), (28, 48), 0, 3)
    ok, encoded = cv2.imencode(".png", img)
    with open(os.fsencode(folder) + b"/one-\xff\xfe.png", "wb") as f:
        f.write(encoded.tobytes())
    for figure in (tmp_path / "f.pdf",):    # PNG and SVG: tests/test_plots.py
        r = run_with({}, "--load", small_model, "--digits", folder, "--figure", figure,
                     "--no-show")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        # undecodable bytes in the name are printed as U+FFFD
        assert r.stdout.splitlines()[1].startswith("one-\ufffd\ufffd.png: ")
        assert figure.stat().st_size > 1000


@pytest.mark.parametrize("kind, mode", [("file", ["--train", "--out", "OUT"]),
                                        ("missing", ["--evaluate"])])
def test_a_data_path_that_is_not_a_folder_is_named_as_such(small_model, tmp_path, kind, mode):
    target = tmp_path / ("mnist.gz" if kind == "file" else "no-such-folder")
    if kind == "file":
        target.write_bytes(b"x")
    args = [a if a != "OUT" else tmp_path / "m.npz" for a in mode]
    if "--evaluate" in mode:
        args += ["--load", small_model]
    r = run(*args, "--data", target, "--no-show", "--figure", tmp_path / "f.png")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    expected = ("is a file, not a folder; give the folder that holds the four MNIST files"
                if kind == "file" else "no such folder.")
    assert r.stderr.startswith(f"mnist.py: error: {target} (from --data): {expected}")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("kind", ["file", "missing"])
def test_a_tinynet_data_that_is_not_a_folder_is_named_as_such(small_model, tmp_path, kind):
    target = tmp_path / ("mnist.gz" if kind == "file" else "no-such-folder")
    if kind == "file":
        target.write_bytes(b"x")
    r = run_with({"TINYNET_DATA": target}, "--load", small_model, "--evaluate", "--no-show",
                 "--figure", tmp_path / "f.png")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"mnist.py: error: {target} (from TINYNET_DATA): "
                               + ("is a file" if kind == "file" else "no such folder"))


def test_evaluate_needs_only_the_test_files_and_makes_no_cache_folder(small_model, two_images,
                                                                      tmp_path, mnist):
    from tinynet import data

    source = data.find_mnist(download=False)
    test_only = tmp_path / "test-only"
    test_only.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        found = data._find_file(source, stem)
        (test_only / os.path.basename(found)).symlink_to(found)
    cache = tmp_path / "cache"
    cache.mkdir()
    r = run_with({"TINYNET_DATA": None, "XDG_CACHE_HOME": cache,
                  "MPLCONFIGDIR": tmp_path / "mpl"}, "--load", small_model,
                 "--evaluate", "--data", test_only, "--digits", two_images,
                 "--figure", tmp_path / "fig", "--no-show")
    assert r.returncode == 0, r.stderr
    assert "on 10000 images" in r.stdout
    assert f"saved {tmp_path / 'evaluation.png'}" in r.stdout
    assert os.listdir(cache) == []


def test_evaluate_without_mnist_and_without_network_leaves_no_cache_folder(small_model,
                                                                           tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    script = (f"import sys; sys.argv[0] = {str(SCRIPT)!r}; sys.path.insert(0, {str(ROOT)!r})\n"
              "from tinynet import data\n"
              "data.MNIST_MIRRORS[:] = ['http://127.0.0.1:9/']   # an offline machine\n"
              "import runpy; runpy.run_path(sys.argv[0], run_name='__main__')\n")
    r = run_with({"TINYNET_DATA": None, "XDG_CACHE_HOME": cache, "TINYNET_MNIST_MIRROR": None,
                  "MPLCONFIGDIR": tmp_path / "mpl"},
                 "--load", small_model, "--evaluate", "--no-show", script=script)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "could not download t10k-images-idx3-ubyte.gz" in r.stderr
    assert "could not download train" not in r.stderr   # it never asked for the training set
    assert os.listdir(cache) == []


def load_cli():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mnist_cli", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_recipe_trains_into_its_own_file_and_only_the_default_replaces_the_shipped_one():
    cli = load_cli()
    weights = ROOT / "weights"
    assert cli.default_out(cli.DEFAULT_MODEL) == weights / "mnist.npz"
    assert cli.default_out("mlp") == weights / "mnist_mlp.npz"
    others = [name for name in cli.recipes.RECIPES if name not in (cli.DEFAULT_MODEL, "mlp")]
    assert others and all(cli.default_out(name) == weights / f"mnist_{name}.npz"
                          for name in others)


def test_the_train_answer_says_how_long_it_takes_and_what_it_replaces(monkeypatch, capsys):
    cli = load_cli()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["x", "t"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert cli.ask_load_or_train() == "train"
    out = capsys.readouterr().out
    assert "[l] load the trained model (weights/mnist.npz)" in out
    assert ("[t] train a new one: cnn_redrawn, 5 networks of 18 epochs, about 50 min (on 2 "
            "cores); "
            "then replaces "
            "weights/mnist.npz (the shipped model; `git checkout` brings it back)") in out
    assert "Please answer l or t." in out


def test_the_train_plan_for_a_new_file_says_it_saves_it(tmp_path):
    cli = load_cli()
    assert cli.training_plan("mlp", 1, tmp_path / "m.npz") == (
        f"mlp, 1 epoch, about 2 s (on 2 cores); saves {tmp_path / 'm.npz'}")


SAVE_ON_A_FULL_DISK = """
import errno, sys
sys.argv[0] = {script!r}
sys.path.insert(0, {root!r})
import numpy as np
from tinynet import data, networks, recipes

def fake_train(name, mnist, **kwargs):     # training itself is tested elsewhere
    model = networks.mlp(np.random.default_rng(1), hidden=(8,))
    model.metadata.update(test_accuracy=0.5, train_seconds=1.0)
    return model

def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

data.load_mnist = lambda *a, **k: (np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8),
                                   np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8))
recipes.run = fake_train
np.savez = full_disk
import runpy; runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_full_disk_keeps_the_old_model_with_one_line_naming_it(small_model, tmp_path):
    before = small_model.read_bytes()
    script = SAVE_ON_A_FULL_DISK.format(script=str(SCRIPT), root=str(ROOT))
    r = run_with({}, "--train", "--model", "mlp", "--out", small_model, "--no-show",
                 script=script)
    assert r.returncode == 1
    assert r.stderr == (f"mnist.py: error: could not write {small_model}: No space left on "
                        "device (the previous file is unchanged; the trained model is lost)\n")
    assert small_model.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["small.npz"]


def start_training(tmp_path, out, *extra):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--train", "--model", "mlp",
                             "--epochs", "1", "--out", str(out), "--no-show", "--digits",
                             str(tmp_path / "nothing"), *map(str, extra)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stderr:                 # the first progress line: training runs
        if line.startswith("epoch 1/1"):
            break
    return proc, line


def finish(proc, first_line):
    try:
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return stdout, first_line + rest


def test_sigterm_during_training_checkpoints_and_keeps_the_old_model(small_model, tmp_path,
                                                                     mnist):
    os.chmod(small_model, 0o664)
    before = small_model.read_bytes()
    proc, line = start_training(tmp_path, small_model)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = finish(proc, line)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    checkpoint = tmp_path / "small.checkpoint.npz"
    assert (f"interrupted: {small_model} was not changed; resume with --resume {checkpoint}"
            in stderr)
    assert small_model.read_bytes() == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]

    # --resume alone: the checkpoint knows the recipe (mlp, not the default cnn) and --out
    resumed = run("--resume", checkpoint, "--no-show", "--digits", tmp_path / "nothing")
    assert "Traceback" not in resumed.stderr
    assert f"resuming mlp from {checkpoint}: epoch 1 of 1, step " in resumed.stdout
    assert re.search(r"\(trained in [\w ]+: [\w ]+ before the interruption, [\w ]+ now\)",
                     resumed.stdout), resumed.stdout
    assert f"saved {small_model}" in resumed.stdout
    assert not checkpoint.exists()
    assert stat_mode(small_model) == 0o664              # the replaced file kept its mode


def stat_mode(path):
    return os.stat(path).st_mode & 0o777


def test_three_quick_ctrl_c_presses_end_without_a_traceback(tmp_path, mnist):
    out = tmp_path / "m.npz"
    proc, line = start_training(tmp_path, out)
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    stdout, stderr = finish(proc, line)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert "interrupted: " in stderr and not out.exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_resume_with_another_model_is_a_usage_error(tmp_path, tiny_recipe):
    from test_checkpoints import make_checkpoint

    checkpoint = make_checkpoint(tmp_path / "c.npz", tiny_recipe)
    r = run("--resume", checkpoint, "--model", "cnn", "--no-show")
    assert r.returncode == 2
    assert r.stderr == f"mnist.py: error: {checkpoint} continues the training of --model tiny, " \
                       "not cnn\n"


def started_importing(proc, library, timeout=60.0):
    """Wait until `proc` has loaded `library`'s files: then mnist.py runs its own code (it sets
    its Ctrl-C handler before importing anything heavy). A press that comes while Python itself
    is still starting would end it as any Python program ends, not as mnist.py does; a fixed
    sleep cannot tell the two apart on a busy machine. Without /proc, a fixed wait."""
    maps = Path(f"/proc/{proc.pid}/maps")
    if not maps.parent.exists():
        time.sleep(0.4)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if library in maps.read_text():
                return
        except OSError:
            pass
        time.sleep(0.005)


def test_ctrl_c_presses_while_starting_up_end_without_a_traceback(small_model, two_images):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("DISPLAY", None)
    for k in range(300):               # enough images that the run outlasts the presses
        (two_images / f"copy{k}.png").write_bytes((two_images / "one_1.png").read_bytes())
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--load", str(small_model),
                             "--digits", str(two_images), "--no-show"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    started_importing(proc, "numpy")         # importing NumPy and tinynet, or reading
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "mnist.py: interrupted"


# -- the reader's line format (tinynet.read through the CLI) ------------------------------------

def test_a_sheet_of_two_lines_prints_them_joined_by_a_slash(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reader import page

    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "sheet.png"), page(["123", "456"]))
    figure = tmp_path / "fig.png"
    r = run("--load", ROOT / "weights" / "mnist.npz", "--digits", folder, "--no-figure",
            "--figure", figure, "--no-show")
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[1]
    assert line.startswith("sheet.png: 123/456 (") and "% for the least sure digit)" in line
    assert not figure.exists() and "figure" not in r.stdout      # --no-figure: none drawn


def test_a_folder_with_an_unreadable_format_says_so(small_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "holiday.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (folder / "notes.txt").write_text("not an image, skipped")
    r = run("--load", small_model, "--digits", folder, "--no-show")
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["holiday.heic: error: HEIC images cannot be read; convert "
                                     "it to PNG or JPEG"]


# -- bad images, bad models, Ctrl-C and bad command lines (from the robustness tests) --

BAD_IMAGES = {
    # file name: (content, the reason printed)
    "notes.png": (b"these are my notes, not a picture\n", "not an image file"),
    "empty.png": (b"", "empty file (0 bytes)"),
    "cut.png": (encoded(".png", paper_seven())[:-30], "truncated PNG file"),
    "cut.jpg": (encoded(".jpg", paper_seven())[:300], "truncated JPEG file"),
    "zero.png": (png_bytes(0, 10), "image has 0 pixels (0x10)"),
    "huge.png": (png_bytes(30000, 30000, zlib.compress(b"\x00" * 1000)),
                 "image of 30000x30000 pixels is too large (limit 25000000 pixels)"),
    "blank.png": (encoded(".png", np.full((40, 40), 255, np.uint8)), "no digit found"),
}


@pytest.fixture
def image_folder(tmp_path):
    """Two good images, one animated GIF, one two-page TIFF and every kind of bad file."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "good_7.png"), paper_seven())
    cv2.imwrite(str(folder / "good_7.jpg"), paper_seven())
    pages = [paper_seven(), np.zeros((56, 56), np.uint8)]
    assert cv2.imwritemulti(str(folder / "pages.tif"), pages)
    pil = pytest.importorskip("PIL.Image")
    frames = [pil.fromarray(paper_seven()), pil.fromarray(np.full((56, 56), 255, np.uint8))]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    for name, (content, _) in BAD_IMAGES.items():
        (folder / name).write_bytes(content)
    return folder


def test_cli_reports_every_bad_image_on_one_line_and_reads_the_rest(small_model, image_folder,
                                                                    tmp_path):
    empty = tmp_path / "no-images"
    empty.mkdir()
    (empty / "readme.txt").write_text("not an image")
    missing = tmp_path / "nope.png"
    r = run("--load", small_model, "--digits", image_folder, missing, empty,
            "--figure", tmp_path / "fig.png", "--no-show")
    no_traceback(r)
    assert r.returncode == 1                                   # some files failed
    errors = r.stderr.splitlines()
    expected = {name: reason for name, (_, reason) in BAD_IMAGES.items()}
    expected["nope.png"] = "no such file"
    for name, reason in expected.items():
        lines = [line for line in errors if line.startswith(f"{name}: error: ")]
        assert len(lines) == 1 and reason in lines[0], (name, r.stderr)
    assert f"{empty}: error: no images in this folder" in errors
    assert len(errors) == len(expected) + 1                    # one line per failure, no more
    # the good files, the first frame of the GIF and the first page of the TIFF still ran
    predicted = {line.split(":")[0] for line in r.stdout.splitlines()
                 if not line.startswith(("loaded", "figure"))}
    assert predicted == {"good_7.png", "good_7.jpg", "anim.gif", "pages.tif"}
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_cli_exit_status_is_0_only_when_every_image_was_read(small_model, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    cv2.imwrite(str(good / "a_7.png"), paper_seven())
    empty = tmp_path / "empty"
    empty.mkdir()
    ok = run("--load", small_model, "--digits", good, "--figure", tmp_path / "f.png",
             "--no-show")
    assert ok.returncode == 0, ok.stderr
    # an empty folder among good ones still counts as a failure
    bad = run("--load", small_model, "--digits", good, empty, "--figure", tmp_path / "f.png",
              "--no-show")
    no_traceback(bad)
    assert bad.returncode == 1
    assert "a_7.png: " in bad.stdout and "no images in this folder" in bad.stderr


def object_array_model(path):
    models.mlp(np.random.default_rng(0), hidden=(8,)).save(path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["1.params.W"] = np.array([{"evil": "pickle"}], dtype=object)
    np.savez(path, **arrays)


def wrong_input_model(path):
    rng = np.random.default_rng(0)
    tinynet.Sequential([tinynet.Flatten(), tinynet.Dense(100, 10, rng=rng)]).save(path)


def nan_model(path):
    models.mlp(np.random.default_rng(0), hidden=(8,)).save(path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["3.params.b"] = np.full_like(arrays["3.params.b"], np.nan)
    np.savez(path, **arrays)


def twelve_output_model(path):
    rng = np.random.default_rng(0)
    tinynet.Sequential([tinynet.Flatten(), tinynet.Dense(784, 12, rng=rng)]).save(path)


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b"PK\x03\x04 this zip stops here"), "damaged or truncated"),
    (lambda p: p.write_text("not a model"), "not a tinynet model (.npz) file"),
    (object_array_model, "contains pickled Python objects; refusing to load them"),
    (nan_model, "array 3.params.b holds NaN or infinite values"),
    (wrong_input_model, "not a digit recognizer: it cannot take a 28x28 image"),
    (twelve_output_model, "shape (12,), not 10 digit probabilities (or 11, with 'not a "
                          "digit')"),
    (lambda p: p.mkdir(), "is a directory"),
])
def test_cli_load_of_a_bad_model_is_one_line_and_exit_1(tmp_path, make, reason):
    path = tmp_path / "bad.npz"
    make(path)
    r = run("--load", path, "--no-show", "--figure", tmp_path / "f.png")
    no_traceback(r)
    assert r.returncode == 1
    assert r.stderr.startswith(f"mnist.py: error: {path}: ")
    assert reason in r.stderr and len(r.stderr.strip().splitlines()) == 1


def model_arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k != META_KEY}, json.loads(str(f[META_KEY]))


def test_cli_ctrl_c_checkpoints_keeps_out_and_resume_matches(mnist, tmp_path, small_model):
    """Ctrl-C during `mnist.py --train`: no question, a checkpoint, the old --out file byte for
    byte, exit 130 with how to resume; `--resume` then ends where an uninterrupted run does."""
    out = tmp_path / "out.npz"
    out.write_bytes(small_model.read_bytes())
    before = out.read_bytes()
    checkpoint = tmp_path / "out.checkpoint.npz"
    digits = tmp_path / "digits"
    digits.mkdir()
    cv2.imwrite(str(digits / "a_7.png"), paper_seven())
    common = ["--model", "mlp", "--epochs", "1", "--seed", "1", "--digits", digits,
              "--figure", tmp_path / "f.png", "--no-show"]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--train", "--out", str(out),
                             *map(str, common)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stderr:                   # the first progress line: training runs
            if line.startswith("epoch 1/1"):
                break
        proc.send_signal(signal.SIGINT)
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = line + rest
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Load the trained model" not in stdout
    assert f"interrupted: {out} was not changed; resume with --resume {checkpoint}" in stderr
    assert out.read_bytes() == before
    assert checkpoint.exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]

    resumed = run("--resume", checkpoint, "--out", tmp_path / "resumed.npz", *common)
    assert resumed.returncode == 0, resumed.stderr
    no_traceback(resumed)
    straight = run("--train", "--out", tmp_path / "straight.npz", *common)
    assert straight.returncode == 0, straight.stderr
    a, meta_a = model_arrays(tmp_path / "resumed.npz")
    b, meta_b = model_arrays(tmp_path / "straight.npz")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert meta_a["metadata"]["test_accuracy"] == meta_b["metadata"]["test_accuracy"]



@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--epochs", "many"], "invalid int value: 'many'"),
    (["--model", "resnet"], "invalid choice: 'resnet'"),
    (["--train", "--load", "x.npz"], "not allowed with argument"),
    (["--digits"], "expected at least one argument"),
])
def test_bad_command_lines_print_usage_and_exit_2(args, message):
    r = run(*args)
    no_traceback(r)
    assert r.returncode == 2
    assert r.stderr.startswith("usage: mnist.py") and message in r.stderr


def test_out_that_is_a_folder_is_refused_before_training(tmp_path):
    r = run("--train", "--out", tmp_path)
    no_traceback(r)
    assert r.returncode == 2
    assert f"cannot write {tmp_path}: it is a folder" in r.stderr
    assert "loading MNIST" not in r.stdout


def test_resume_from_a_missing_checkpoint_is_a_clean_error(mnist, tmp_path):
    r = run("--resume", tmp_path / "gone.npz", "--out", tmp_path / "m.npz")
    no_traceback(r)
    assert r.returncode == 1
    assert f"mnist.py: error: {tmp_path / 'gone.npz'}: no such file" in r.stderr
    assert not (tmp_path / "m.npz").exists()


def test_resume_from_a_model_instead_of_a_checkpoint(mnist, small_model, tmp_path):
    r = run("--resume", small_model, "--model", "mlp", "--out", tmp_path / "m.npz")
    no_traceback(r)
    assert r.returncode == 1
    assert "checkpoint" in r.stderr.splitlines()[-1]


# -- not a digit: models with an 11th output ---------------------------------------------------

def rejecting_model(path, not_digit_logit=5.0):
    """A real 11-output network, saved to `path`, that calls every image "not a digit":
    its logits are 0 for the ten digits and `not_digit_logit` for class 10, whatever the
    image, so "not a digit" has probability e^5 / (e^5 + 10) = 93.7%."""
    dense = tinynet.Dense(784, 11)
    dense.params["W"][:] = 0
    dense.params["b"][:] = [0.0] * 10 + [not_digit_logit]
    tinynet.Sequential([tinynet.Flatten(), dense]).save(path)


def test_an_image_of_no_digit_prints_not_a_digit_and_counts_as_read(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reader import page

    model = tmp_path / "rejects.npz"
    rejecting_model(model)
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "cross.png"), page(["x"]))
    cv2.imwrite(str(folder / "pair.png"), page(["x1"]))
    figure = tmp_path / "fig.png"
    r = run("--load", model, "--digits", folder, "--figure", figure, "--no-show")
    no_traceback(r)
    assert r.returncode == 0, r.stderr                 # read fine: there is just no digit
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert "cross.png: not a digit (93.7% sure)" in lines
    assert "pair.png: not a digit (2 glyphs; 93.7% sure of the least sure)" in lines
    assert figure.stat().st_size > 1000


@pytest.mark.skipif(not SHIPPED.exists(), reason="weights/mnist.npz is not in this checkout")
def test_describe_says_what_was_left_out_as_not_a_digit(monkeypatch):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reader import NotADigitWhen, TenOutputs, crossed, page

    describe = load_cli().describe
    number = tinynet.read(page(["4x7"]), NotADigitWhen(crossed, sure=0.99))
    assert re.fullmatch(r"47 \([\d.]+% for the least sure digit\); 1 glyph not a digit left out",
                        describe(number))
    # a reader that rejects at 0.5 (the shipped one waits for 0.9, 0.97 among digits) can
    # leave out glyphs it is unsure of: the line says how sure
    monkeypatch.setattr(tinynet.reader, "REJECT_AT", 0.5)
    monkeypatch.setattr(tinynet.reader, "REJECT_IN_NUMBER", 0.5)
    barely = tinynet.read(page(["4x7", "x"]), NotADigitWhen(crossed, sure=0.55))
    assert describe(barely).endswith("; 2 glyphs not digits left out (55.0% sure of the least "
                                     "sure)")
    assert describe(tinynet.read(page(["x"]), NotADigitWhen(crossed))) == \
        "not a digit (95.0% sure)"
    unsure = tinynet.read(page(["7"]), NotADigitWhen(lambda image: True, sure=0.55))
    assert re.fullmatch(r"not a digit \(55.0% sure\); unsure; as a digit it would be 7 "
                        r"\([\d.]+%\)", describe(unsure))
    # a 10-output model: the lines of before, nothing about digits left out
    assert "left out" not in describe(tinynet.read(page(["4x7"]), TenOutputs()))


@pytest.mark.skipif(not SHIPPED.exists(), reason="weights/mnist.npz is not in this checkout")
def test_describe_says_when_the_feature_distance_found_no_digit():
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reader import FarWhen, crossed, page

    describe = load_cli().describe
    assert describe(tinynet.read(page(["x"]), FarWhen(crossed))) == \
        "not a digit (far from every digit the model learnt)"
    assert describe(tinynet.read(page(["x", "x"]), FarWhen(crossed))) == \
        "not a digit (2 glyphs; far from every digit the model learnt)"


def test_a_model_file_with_a_feature_distance_answers_not_a_digit_through_the_cli(tmp_path):
    """End to end: a real 11-output network whose feature distance was fitted on images of
    one upright bar finds a pen-drawn 7 far from all of them, and the CLI says so."""
    from tinynet import feature_distance

    rng = np.random.default_rng(0)
    net = tinynet.Sequential([tinynet.Flatten(), tinynet.Dense(784, 16, rng=rng),
                              tinynet.ReLU(), tinynet.Dense(16, 11, rng=rng)])
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 13:15] = 1.0
    x = np.clip(bar + rng.normal(0, 0.02, (400, 1, 28, 28)), 0, 1).astype(np.float32)
    y = np.arange(400) % 3
    net.feature_distance = feature_distance.fit(net, x[:300], y[:300], x[300:])
    model = tmp_path / "far.npz"
    net.save(model)
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "seven.png"), paper_seven())
    r = run("--load", model, "--digits", folder, "--no-figure")
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert "seven.png: not a digit (far from every digit the model learnt)" in \
        r.stdout.splitlines()


def test_fit_distance_needs_a_model_to_load_and_a_recipe_that_holds_digits_out(tmp_path):
    r = run("--fit-distance", "--no-figure")
    assert r.returncode == 2 and "--fit-distance needs --load PATH" in r.stderr
    model = tmp_path / "plain.npz"
    rejecting_model(model)                            # no recipe in its metadata
    r = run("--load", model, "--fit-distance", "--no-figure")
    no_traceback(r)
    assert r.returncode == 1
    assert "fitting a feature distance needs one of this tinynet's recipes" in r.stderr


def test_evaluate_scores_an_11_output_model_on_its_digits(tmp_path, mnist):
    model = tmp_path / "rejects.npz"
    rejecting_model(model)
    r = run("--load", model, "--evaluate", "--digits", tmp_path / "none", "--no-show",
            "--figure", tmp_path / "predictions.png")
    no_traceback(r)
    assert "test accuracy " in r.stdout
    assert "10000 of these digits judged not a digit (scored above by their best digit)" \
        in r.stdout
    assert (tmp_path / "evaluation.png").exists()


def test_resuming_an_ensemble_says_where_each_network_in_training_stood():
    from tinynet import recipes

    cli = load_cli()
    recipe = recipes.RECIPES["cnn_redrawn"]            # 5 networks, batch 128
    info = {"epochs": 18, "member": 2, "state": {"epoch": 4, "step": 20},
            "running": [{"member": 3, "state": {"epoch": 18, "step": 0}}]}
    assert cli.where_training_stood(info, recipe, 66000) == (
        "network 3 of 5 at epoch 5 of 18, step 20 of 516; network 4 at the end (trained)")
    single = {"epochs": 3, "state": {"epoch": 0, "step": 7}, "running": []}
    assert cli.where_training_stood(single, recipes.RECIPES["mlp"], 60000) == \
        "epoch 1 of 3, step 7 of 1875"
