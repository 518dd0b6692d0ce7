"""Property tests: whatever bytes a user hands tinynet, the IDX reader, the model loader and
the image loader either succeed or raise the project's own error (a TinynetError subclass
whose message names the file). Never a bare ValueError, KeyError, cv2.error, ... and never a
crash.

Each test feeds either random bytes (optionally behind a valid magic number, so the parsers get
past their first check) or a valid file with a few bytes changed, inserted or cut off, which
reaches much deeper into each format than random bytes do. Examples and deadlines are kept
small so the whole file runs in well under a minute.
"""

import gzip
import io
import json

import cv2
import numpy as np
import pytest
from conftest import encoded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinynet
from tinynet import Dense, Flatten, ReLU, Sequential, data, imagefile
from tinynet.errors import DataError, ImageError, ModelFileError
from tinynet.model import META_KEY

FUZZ = settings(max_examples=80, deadline=2000, suppress_health_check=list(HealthCheck),
                derandomize=True)


@st.composite
def mutated(draw, original):
    """``original`` with a few bytes overwritten, a slice deleted or inserted, or cut short."""
    raw = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["set", "set", "delete", "insert", "truncate"]))
        if not raw:
            break
        at = draw(st.integers(0, len(raw) - 1))
        if action == "set":
            raw[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del raw[at:at + draw(st.integers(1, 16))]
        elif action == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del raw[at:]
    return bytes(raw)


# -- IDX ------------------------------------------------------------------------------------

def idx_bytes(array):
    buffer = io.BytesIO()
    header = bytes([0, 0, data.IDX_CODES[array.dtype], array.ndim])
    buffer.write(header + np.array(array.shape, ">u4").tobytes())
    buffer.write(array.astype(array.dtype.newbyteorder(">")).tobytes())
    return buffer.getvalue()


VALID_IDX = [
    idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)),
    idx_bytes(np.arange(10, dtype=np.uint8)),
    idx_bytes(np.linspace(-1, 1, 12).astype(np.float32).reshape(3, 4)),
]


def check_idx(raw):
    try:
        array = data.parse_idx(raw, "fuzz.idx")
    except DataError as exc:
        assert "fuzz.idx" in str(exc)
        return
    assert isinstance(array, np.ndarray)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([b"", b"\x00\x00\x08", b"\x00\x00\x08\x03",
                                                b"\x00\x00\x0d\x02", b"\x00\x00\x08\xff"]))
def test_parse_idx_random_bytes(raw, prefix):
    check_idx(prefix + raw)


@FUZZ
@given(st.sampled_from(VALID_IDX).flatmap(mutated))
def test_parse_idx_mutated_files(raw):
    check_idx(raw)


@FUZZ
@given(st.sampled_from(VALID_IDX).map(gzip.compress).flatmap(mutated))
def test_read_idx_mutated_gzip(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("idx") / "fuzz.idx.gz"
    path.write_bytes(raw)
    try:
        data.read_idx(path)
    except DataError as exc:
        assert "fuzz.idx.gz" in str(exc)


# -- model files ------------------------------------------------------------------------------

def small_model():
    rng = np.random.default_rng(0)
    return Sequential([Flatten(), Dense(6, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng)])


def model_bytes(compressed=False):
    model = small_model()
    buffer = io.BytesIO()
    arrays = {**model.arrays(), META_KEY: np.array(json.dumps(
        {"format": "tinynet", "format_version": 1, "layers": model.describe(), "metadata": {}}))}
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


VALID_MODELS = [model_bytes(), model_bytes(compressed=True)]


def check_model(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("model") / "fuzz.npz"
    path.write_bytes(raw)
    try:
        model = tinynet.load(path)
    except ModelFileError as exc:
        assert "fuzz.npz" in str(exc)
        return
    assert model.layers


def test_the_valid_model_bytes_load(tmp_path_factory):
    for raw in VALID_MODELS:
        check_model(tmp_path_factory, raw)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06"]))
def test_load_random_bytes(tmp_path_factory, raw, prefix):
    check_model(tmp_path_factory, prefix + raw)


@FUZZ
@given(st.sampled_from(VALID_MODELS).flatmap(mutated))
def test_load_mutated_model_files(tmp_path_factory, raw):
    check_model(tmp_path_factory, raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)


@st.composite
def mutated_description(draw):
    """The JSON description of a valid model with one field replaced by any JSON value."""
    model = small_model()
    meta = {"format": "tinynet", "format_version": 1, "layers": model.describe(), "metadata": {}}
    where = draw(st.sampled_from(["top", "format_version", "layers", "metadata", "layer",
                                  "config", "config value"]))
    value = draw(json_values)
    layer = meta["layers"][draw(st.integers(0, len(meta["layers"]) - 1))]
    if where == "top":
        meta = value
    elif where == "layer":
        meta["layers"][1] = value
    elif where == "config":
        layer["config"] = value
    elif where == "config value":
        key = draw(st.sampled_from(sorted(layer["config"]) + ["rng", "other"]))
        layer["config"][key] = value
    else:
        meta[where] = value
    arrays = {**model.arrays(), META_KEY: np.array(json.dumps(meta))}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@FUZZ
@given(mutated_description())
def test_load_mutated_model_descriptions(tmp_path_factory, raw):
    check_model(tmp_path_factory, raw)


# -- images -----------------------------------------------------------------------------------

def seven(size=24):
    canvas = np.full((size, size), 255, np.uint8)
    cv2.polylines(canvas, [np.array([[5, 4], [19, 4], [9, 21]], np.int32)], False, 0, 2)
    return canvas


def gif_bytes():
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    frames = [pil.fromarray(seven()), pil.fromarray(255 - seven())]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


VALID_IMAGES = [
    encoded(".png", seven()),
    encoded(".png", cv2.cvtColor(seven(), cv2.COLOR_GRAY2BGRA)),
    encoded(".jpg", seven()),
    encoded(".bmp", seven()),
    encoded(".tif", seven()),
    encoded(".webp", cv2.cvtColor(seven(), cv2.COLOR_GRAY2BGR)),
    gif_bytes(),
]


def check_image(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("image") / "fuzz.img"
    path.write_bytes(raw)
    try:
        image = imagefile.load_image(path)
    except ImageError as exc:
        assert "fuzz.img" in str(exc)
        return
    assert image.ndim == 2 and image.dtype == np.float32
    assert np.isfinite(image).all() and 0 <= image.min() <= image.max() <= 1
    try:
        reading = tinynet.read(image, UniformModel())
    except ImageError:
        return
    assert all(d.image.shape == (28, 28) for d in reading.digits)


class UniformModel:
    def predict(self, images):
        return np.full((len(images), 10), 0.1, np.float32)


def test_the_valid_image_bytes_load(tmp_path_factory):
    for raw in VALID_IMAGES:
        check_image(tmp_path_factory, raw)


@FUZZ
@given(st.sampled_from(VALID_IMAGES).flatmap(mutated))
def test_load_image_mutated_files(tmp_path_factory, raw):
    check_image(tmp_path_factory, raw)


@FUZZ
@given(st.sampled_from(VALID_IMAGES).flatmap(lambda raw: st.integers(0, len(raw)).map(
    lambda n: raw[:n])))
def test_load_image_truncated_files(tmp_path_factory, raw):
    check_image(tmp_path_factory, raw)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff",
                                                 b"BM", b"II*\x00", b"GIF89a"]))
def test_load_image_random_bytes_never_crash(tmp_path_factory, raw, magic):
    check_image(tmp_path_factory, magic + raw)
