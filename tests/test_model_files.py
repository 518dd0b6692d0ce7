"""Hostile model files: every bad description is a ModelFileError naming the file, never
another exception and never a model other than the one described; a small file cannot make
tinynet allocate much before it is refused."""

import json
import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinynet
from tinynet import model as model_module
from tinynet import models
from tinynet.errors import ModelFileError, TinynetError
from tinynet.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU
from tinynet.model import META_KEY, Sequential


def every_layer_model():
    """A small network with one layer of every configurable type."""
    rng = np.random.default_rng(0)
    return Sequential([Conv2D(1, 2, 3, rng=rng), BatchNorm(2), LeakyReLU(0.1),
                       MaxPool2D(2), Dropout(0.25, rng=rng), Flatten(),
                       Dense(2 * 13 * 13, 10, rng=rng), ReLU()])


def saved(tmp_path, edit=None, arrays_edit=None, name="m.npz"):
    model = every_layer_model()
    meta = {"format": "tinynet", "format_version": 1, "layers": model.describe(),
            "metadata": {}}
    if edit:
        meta = edit(meta) or meta
    arrays = model.arrays()
    if arrays_edit:
        arrays_edit(arrays)
    arrays[META_KEY] = np.array(json.dumps(meta))     # NaN/Infinity as Python's json writes
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def config_of(layer, key, value):
    def edit(meta):
        meta["layers"][layer]["config"][key] = value
    return edit


LAYER = {"Conv2D": 0, "BatchNorm": 1, "LeakyReLU": 2, "MaxPool2D": 3, "Dropout": 4,
         "Dense": 6}


@pytest.mark.parametrize("kind, key, value, message", [
    ("Dense", "in_features", "338", "in_features is '338', expected a whole number"),
    ("Dense", "in_features", 338.0, "in_features is 338.0, expected a whole number"),
    ("Dense", "out_features", True, "out_features is True, not a number"),
    ("Dense", "out_features", 0, "out_features is 0, it must be at least 1"),
    ("Dense", "out_features", -10, "negative"),
    ("Dense", "init", 5, "init must be 'he' or 'glorot'"),
    ("Conv2D", "kernel_size", [3, 3.5], "kernel_size is [3, 3.5], expected a list"),
    ("Conv2D", "kernel_size", "3", "kernel_size is '3'"),
    ("Conv2D", "stride", 1.5, "stride is 1.5, expected a whole number"),
    ("Conv2D", "padding", None, "has a bad config: int() argument"),
    ("Conv2D", "padding", {"a": 1}, "padding is {'a': 1}, not a number or text"),
    ("BatchNorm", "eps", float("nan"), "eps is nan, not a finite number"),
    ("BatchNorm", "eps", -1e-5, "eps is -1e-05, it must be positive"),
    ("BatchNorm", "eps", 0, "eps is 0.0, it must be positive"),
    ("BatchNorm", "momentum", float("inf"), "momentum is inf, not a finite number"),
    ("BatchNorm", "num_features", "2", "num_features is '2', expected a whole number"),
    ("LeakyReLU", "slope", float("-inf"), "slope is -inf, not a finite number"),
    ("LeakyReLU", "slope", "0.1", "slope is '0.1', expected a number"),
    ("Dropout", "p", "0.25", "p"),
    ("Dropout", "p", [0.25], "p"),
    ("MaxPool2D", "pool_size", 10 ** 400, "too large for the arrays in the file"),
    ("MaxPool2D", "stride", 0, "pool_size and stride must be positive"),
])
def test_a_setting_of_the_wrong_type_or_an_impossible_value(tmp_path, kind, key, value,
                                                            message):
    path = saved(tmp_path, config_of(LAYER[kind], key, value))
    with pytest.raises(ModelFileError) as info:
        tinynet.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: layer {LAYER[kind]} ({kind}) ")
    assert message in text


@pytest.mark.parametrize("version", ["1", True, 0, -1, 1.5, None, [1]])
def test_a_format_version_that_is_not_a_version_number(tmp_path, version):
    path = saved(tmp_path, lambda m: m.update(format_version=version))
    with pytest.raises(ModelFileError, match=r"m\.npz: unreadable model description "
                                             r"\(format_version is "):
        tinynet.load(path)


@pytest.mark.parametrize("metadata, message", [
    ({"history": "fast"}, "'metadata.history' must be an object"),
    ({"history": {"loss": [0.5, "low"]}}, "'metadata.history.loss' must be a list of numbers"),
    ({"history": {"loss": [float("nan")]}}, "'metadata.history.loss' must be a list"),
    ({"test_accuracy": 7}, "'metadata.test_accuracy' is 7, not a possible value"),
    ({"test_accuracy": "99%"}, "'metadata.test_accuracy' is '99%'"),
    ({"train_seconds": -3}, "'metadata.train_seconds' is -3"),
])
def test_metadata_that_figures_and_reports_read_back_is_checked(tmp_path, metadata, message):
    path = saved(tmp_path, lambda m: m.update(metadata=metadata))
    with pytest.raises(ModelFileError, match=r"m\.npz: unreadable model description") as info:
        tinynet.load(path)
    assert message in str(info.value)


def test_a_negative_running_variance_is_refused(tmp_path):
    def negative(arrays):
        arrays["1.buffers.running_var"] = np.array([1.0, -0.5], np.float32)

    path = saved(tmp_path, arrays_edit=negative)
    with pytest.raises(ModelFileError, match=r"m\.npz: array 1\.buffers\.running_var holds "
                                             "negative values"):
        tinynet.load(path)


ODD_VALUES = [True, False, None, "7", "", 0, -1, 1, 2, 3, 0.5, 2.5, 1e-300, 1e300, 10 ** 30,
              float("nan"), float("inf"), [], [3], [1, 1], [2, 2], ["3", "3"], {}, {"x": 1}]
SETTINGS = [(layer, key) for layer, spec in enumerate(every_layer_model().describe())
            for key in spec["config"]]


@pytest.mark.parametrize("layer, key", SETTINGS)
def test_any_odd_setting_loads_as_written_or_is_refused(tmp_path, layer, key):
    """Never another exception, and never a model whose settings differ from the file's."""
    for n, value in enumerate(ODD_VALUES):
        path = saved(tmp_path, config_of(layer, key, value), name=f"m{n}.npz")
        try:
            model = tinynet.load(path)
        except ModelFileError as exc:
            assert str(exc).startswith(f"{path}: "), exc
            continue
        loaded = model.layers[layer].config()[key]
        assert loaded == value and type(loaded) in (type(value), float), (key, value, loaded)


# -- allocation limits ---------------------------------------------------------------------

def npy_bytes(shape, dtype="<f4", data=b""):
    """A version 1.0 .npy whose header claims ``shape``, followed by ``data``."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def forged_npz(path, entries, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compress) as archive:
        for name, raw in entries.items():
            archive.writestr(name + ".npy", raw)


def peak_while(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_an_array_header_claiming_more_than_its_entry_holds_allocates_nothing(tmp_path):
    path = tmp_path / "liar.npz"
    forged_npz(path, {"0.params.W": npy_bytes((100_000, 100_000), data=b"\0" * 64)})
    assert path.stat().st_size < 1000

    def load():
        with pytest.raises(ModelFileError) as info:
            tinynet.load(path)
        assert str(info.value) == (
            f"{path}: array 0.params.W claims shape (100000, 100000) of float32 "
            "(40000000000 bytes) but its entry holds 64 bytes of data")

    assert peak_while(load) < 1 << 20


def test_a_small_compressed_file_cannot_unpack_to_much(tmp_path):
    """A 50 MB array of zeros deflates to ~50 KB: refused from the archive's directory."""
    path = tmp_path / "bomb.npz"
    zeros = npy_bytes((50 * 1024 ** 2 // 4,), data=bytes(50 * 1024 ** 2))
    forged_npz(path, {"0.params.W": zeros}, zipfile.ZIP_DEFLATED)
    size = path.stat().st_size
    assert size < 200_000

    def load():
        with pytest.raises(ModelFileError, match=rf"bomb\.npz: unpacks to {len(zeros)} bytes, "
                                                 rf"more than the \d+ byte limit for a model "
                                                 rf"file of {size} bytes"):
            tinynet.load(path)

    assert peak_while(load) < 1 << 20


def test_an_honest_compressed_model_still_loads(tmp_path):
    model = every_layer_model()
    path = tmp_path / "c.npz"
    meta = {"format": "tinynet", "format_version": 1, "layers": model.describe()}
    np.savez_compressed(path, **model.arrays(), **{META_KEY: np.array(json.dumps(meta))})
    assert tinynet.load(path).describe() == model.describe()


def test_the_unpack_limit_follows_the_size_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(model_module, "UNPACK_SLACK", 0)
    monkeypatch.setattr(model_module, "MAX_UNPACK_RATIO", 2)
    path = tmp_path / "z.npz"
    forged_npz(path, {"a": npy_bytes((10_000,), data=bytes(40_000))}, zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelFileError, match=r"z\.npz: unpacks to \d+ bytes, more than the "
                                             r"\d+ byte limit for a model file"):
        tinynet.load(path)


def test_an_array_entry_shorter_than_its_header_says_is_refused(tmp_path):
    path = tmp_path / "short.npz"
    forged_npz(path, {"a": npy_bytes((1000,), data=bytes(400))})
    with pytest.raises(ModelFileError, match=r"short\.npz: array a claims shape \(1000,\)"):
        tinynet.load(path)


@pytest.mark.parametrize("dtype", ["|O", "<V8"])
def test_object_and_odd_dtypes_never_reach_the_model(tmp_path, dtype):
    path = tmp_path / "o.npz"
    forged_npz(path, {"a": npy_bytes((1,), dtype, data=b"\0" * 8)})
    with pytest.raises(ModelFileError, match=r"o\.npz: "):
        tinynet.load(path)


def test_a_model_that_cannot_be_opened_is_a_model_file_error_naming_it(tmp_path):
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    with pytest.raises(ModelFileError, match=rf"{path / 'm.npz'}: "):
        tinynet.load(path / "m.npz")


def test_a_fifo_or_device_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)                        # opening it to read would wait for a writer
    for path in (fifo, "/dev/zero"):
        with pytest.raises(ModelFileError, match=f"{path}: not a regular file"):
            tinynet.load(path)


# -- more bad model files ---------------------------------------------------------


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
