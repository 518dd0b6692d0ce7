"""Issue 5, case by case: bad input never crashes tinynet and never loses a model.

Cases already covered elsewhere (tests/test_model.py, test_data.py, test_train.py,
test_cli.py, test_vision.py) are not repeated here; see the table in the issue's closing note.
The command-line tests run examples/mnist.py as a subprocess, as a user would.
"""

import gzip
import json
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import LocalMirror, encoded, png_bytes

import tinynet
from tinynet import data, imagefile, models, recipes, train
from tinynet import model as model_module
from tinynet.errors import DataError, ImageError, ModelFileError, TinynetError
from tinynet.model import META_KEY

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "mnist.py"


def run(*args, timeout=300):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, env=env, timeout=timeout)


def no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def seven(size=56, thickness=3):
    """A dark 7 on white paper, uint8."""
    img = np.full((size, size), 255, np.uint8)
    cv2.line(img, (size // 4, size // 7), (3 * size // 4, size // 7), 0, thickness)
    cv2.line(img, (3 * size // 4, size // 7), (size // 2, 6 * size // 7), 0, thickness)
    return img


@pytest.fixture
def small_model(tmp_path):
    path = tmp_path / "small.npz"
    models.mlp(np.random.default_rng(0), hidden=(8,)).save(path)
    return path


# -- 1. images, through examples/mnist.py ---------------------------------------------------

BAD_IMAGES = {
    # file name: (content, the reason printed)
    "notes.png": (b"these are my notes, not a picture\n", "not an image file"),
    "empty.png": (b"", "empty file (0 bytes)"),
    "cut.png": (encoded(".png", seven())[:-30], "truncated PNG file"),
    "cut.jpg": (encoded(".jpg", seven())[:300], "truncated JPEG file"),
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
    cv2.imwrite(str(folder / "good_7.png"), seven())
    cv2.imwrite(str(folder / "good_7.jpg"), seven())
    assert cv2.imwritemulti(str(folder / "pages.tif"), [seven(), np.zeros((56, 56), np.uint8)])
    pil = pytest.importorskip("PIL.Image")
    frames = [pil.fromarray(seven()), pil.fromarray(np.full((56, 56), 255, np.uint8))]
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
    cv2.imwrite(str(good / "a_7.png"), seven())
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


def test_huge_image_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    """The memory bound: 30000x30000 is refused before any pixel buffer is allocated."""
    path = tmp_path / "huge.png"
    path.write_bytes(BAD_IMAGES["huge.png"][0])

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the decoder was called for a huge image")

    monkeypatch.setattr(cv2, "imdecode", must_not_decode)
    with pytest.raises(ImageError, match=r"huge.png: image of 30000x30000 pixels is too large"):
        imagefile.load_image(path)
    assert imagefile.MAX_PIXELS * 20 <= 600 * 1024 ** 2   # the documented bound: about 0.5 GB


# -- 2. model files ---------------------------------------------------------------------------

def test_model_errors_are_one_documented_type():
    assert issubclass(ModelFileError, TinynetError)
    assert "ModelFileError" in tinynet.load.__doc__


def test_save_interrupted_by_ctrl_c_mid_write_keeps_the_old_file(small_model, monkeypatch):
    before = small_model.read_bytes()
    real_savez = np.savez

    def savez_then_ctrl_c(file, **arrays):
        real_savez(file, **arrays)          # half the job: bytes are in the temporary file
        file.flush()
        assert os.path.getsize(file.name) > 0
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        models.mlp(np.random.default_rng(5), hidden=(8,)).save(small_model)
    assert small_model.read_bytes() == before
    assert sorted(os.listdir(small_model.parent)) == ["small.npz"]   # no temporary file
    tinynet.load(small_model)


def test_save_replaces_the_file_only_when_complete(small_model, monkeypatch):
    """While the new file is written the old one is untouched; then it is swapped in whole."""
    before = small_model.read_bytes()
    seen = {}
    real_replace = os.replace

    def replace(src, dst):
        seen["old_file_during_write"] = Path(dst).read_bytes()
        seen["new_file_loads"] = tinynet.load(src).describe()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    new = models.mlp(np.random.default_rng(5), hidden=(8,))
    new.save(small_model)
    assert seen["old_file_during_write"] == before
    assert seen["new_file_loads"] == new.describe()
    np.testing.assert_array_equal(tinynet.load(small_model).layers[1].params["W"],
                                  new.layers[1].params["W"])


def edit_description(path, edit):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays[META_KEY]))
    meta = edit(meta) or meta
    arrays[META_KEY] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["layers"][1]["config"].update(in_features=10 ** 6, out_features=10 ** 6),
     "layer 1 (Dense) has a config too large for the arrays in the file"),
    (lambda m: m["layers"][1]["config"].update(in_features="1000000000"),
     "layer 1 (Dense) has a config too large"),
    (lambda m: m.update(layers=7), "unreadable model description"),
    (lambda m: m.update(metadata=[1, 2]), "unreadable model description"),
    (lambda m: m.update(format_version=1e400), "unreadable model description"),
    (lambda m: m["layers"][1]["config"].update(rng=[1, 2]), "unexpected key 'rng'"),
    (lambda m: m["layers"][1].update(config=[784, 8]), "layer 1 (Dense) has a bad config"),
])
def test_forged_model_descriptions(small_model, edit, message):
    """A description that would allocate terabytes, or is the wrong JSON type, is refused
    before any layer is built."""
    edit_description(small_model, edit)
    with pytest.raises(ModelFileError, match=r"small\.npz: ") as info:
        tinynet.load(small_model)
    assert message in str(info.value)


def test_zip_bomb_model_is_refused_before_reading(small_model, monkeypatch):
    monkeypatch.setattr(model_module, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(ModelFileError, match=r"unpacks to \d+ bytes, more than the 1000 byte"):
        tinynet.load(small_model)


def test_truncated_compressed_model(tmp_path):
    model = models.mlp(np.random.default_rng(0), hidden=(8,))
    np.savez_compressed(tmp_path / "c.npz", **model.arrays(), **{META_KEY: np.array("{}")})
    raw = (tmp_path / "c.npz").read_bytes()
    for cut in (len(raw) // 3, len(raw) - 30):
        (tmp_path / "c.npz").write_bytes(raw[:cut])
        with pytest.raises(ModelFileError, match="c.npz: "):
            tinynet.load(tmp_path / "c.npz")


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


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b"PK\x03\x04 this zip stops here"), "damaged or truncated"),
    (lambda p: p.write_text("not a model"), "not a tinynet model (.npz) file"),
    (object_array_model, "contains pickled Python objects; refusing to load them"),
    (nan_model, "array 3.params.b holds NaN or infinite values"),
    (wrong_input_model, "not a digit recognizer: it cannot take a 28x28 image"),
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


# -- 3. data ------------------------------------------------------------------------------------

def test_truncated_gzip_is_reported(tmp_path):
    data.write_idx(tmp_path / "x.gz", np.zeros((3, 28, 28), np.uint8))
    raw = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="x.gz: cannot read"):
        data.read_idx(tmp_path / "x.gz")


@pytest.mark.parametrize("header, message", [
    (b"\x00\x00\x08\xff", "claims 255 dimensions"),
    (b"\x00\x00\x08\x04" + b"\x00\x01\x00\x00" * 4, r"shape \(65536, 65536, 65536, 65536\)"),
    (b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 2 + b"\x00" * 4, "unusable IDX shape"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
])
def test_absurd_idx_headers(header, message):
    with pytest.raises(DataError, match=message):
        data.parse_idx(header, "x.idx")


def test_gzip_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_IDX_BYTES", 1000)
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"\x00" * 5000))
    with pytest.raises(DataError, match="x.gz: more than 1000 bytes once unzipped"):
        data.read_idx(tmp_path / "x.gz")


def test_corrupt_cached_file_is_named_with_the_checksum(tmp_path):
    from test_data import fake_mnist

    fake_mnist(tmp_path)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: checksum mismatch"):
        data.load_mnist(tmp_path)


@pytest.mark.parametrize("mode, message", [("404", "HTTP Error 404|Not Found"),
                                           ("short", "connection closed|IncompleteRead|"
                                                     "incomplete|Compressed file ended")])
def test_failed_download_leaves_nothing_in_the_cache(tmp_path, mode, message):
    from test_data import fake_mnist

    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    _, sums = fake_mnist(mirror, n_train=300)
    server = LocalMirror(mirror, mode)
    try:
        with pytest.raises(DataError, match=message) as info:
            data.download_mnist(cache, mirrors=[server.url], checksums=sums, quiet=True)
    finally:
        server.close()
    assert "train-images-idx3-ubyte.gz" in str(info.value) and "TINYNET_DATA" in str(info.value)
    assert not cache.exists()


def test_download_interrupted_by_ctrl_c_keeps_only_complete_files(tmp_path, monkeypatch):
    from test_data import fake_mnist

    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    _, sums = fake_mnist(mirror)
    real_fetch = data._fetch

    def fetch(url, timeout, quiet):
        if "train-labels" in url:
            raise KeyboardInterrupt
        return real_fetch(url, timeout, quiet)

    monkeypatch.setattr(data, "_fetch", fetch)
    server = LocalMirror(mirror)
    try:
        with pytest.raises(KeyboardInterrupt):
            data.download_mnist(cache, mirrors=[server.url], checksums=sums, quiet=True)
        assert os.listdir(cache) == ["train-images-idx3-ubyte.gz"]   # complete and verified
        monkeypatch.setattr(data, "_fetch", real_fetch)
        data.download_mnist(cache, mirrors=[server.url], checksums=sums, quiet=True)
    finally:
        server.close()
    assert sorted(os.listdir(cache)) == sorted(s + ".gz" for s in data.MNIST_FILES.values())


# -- 4. training --------------------------------------------------------------------------------

def test_ctrl_c_during_the_last_evaluation_still_checkpoints_and_resumes(tiny_recipe, tmp_path,
                                                                          monkeypatch):
    straight = recipes.run("tiny", tiny_recipe, seed=3, progress=False)
    real_evaluate = train.evaluate
    calls = {"n": 0}

    def evaluate_with_ctrl_c(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:                       # the validation after the last epoch
            os.kill(os.getpid(), signal.SIGINT)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", evaluate_with_ctrl_c)
    checkpoint = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        recipes.run("tiny", tiny_recipe, seed=3, progress=False, checkpoint_path=checkpoint)
    monkeypatch.setattr(train, "evaluate", real_evaluate)
    resumed = recipes.run("tiny", tiny_recipe, progress=False, resume=checkpoint)
    for a, b in zip(straight.layers, resumed.layers):
        for name in a.params:
            np.testing.assert_array_equal(a.params[name], b.params[name])
    assert resumed.metadata["test_accuracy"] == straight.metadata["test_accuracy"]
    assert resumed.metadata["history"]["loss"] == straight.metadata["history"]["loss"]


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
    cv2.imwrite(str(digits / "a_7.png"), seven())
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


# -- 5. the command line --------------------------------------------------------------------------

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
