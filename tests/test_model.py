import json
import os
import zipfile

import numpy as np
import pytest

import tinynet
from tinynet import networks
from tinynet.errors import ModelFileError
from tinynet.model import META_KEY


@pytest.fixture
def model():
    return networks.mlp(np.random.default_rng(0), hidden=(16, 8))


@pytest.fixture
def images():
    return np.random.default_rng(1).random((6, 28, 28), dtype=np.float32)


def test_predict_returns_probabilities(model, images):
    p = model.predict(images)
    assert p.shape == (6, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert model.predict(images[0]).shape == (1, 10)


def test_predict_refuses_unscaled_pixels(model):
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide uint8 images by 255"):
        model.predict(np.full((1, 28, 28), 255.0))


def test_save_load_round_trip_gives_identical_predictions(model, images, tmp_path):
    model.metadata["history"] = {"loss": [0.5, 0.25]}
    model.save(tmp_path / "m.npz")
    loaded = tinynet.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    assert loaded.describe() == model.describe()
    assert loaded.metadata["history"] == {"loss": [0.5, 0.25]}


def test_saved_file_is_plain_arrays_plus_json(model, tmp_path):
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        meta = json.loads(str(f[META_KEY]))
        assert meta["format_version"] == 1
        assert [layer["type"] for layer in meta["layers"]] == [
            "Flatten", "Dense", "ReLU", "Dense", "ReLU", "Dense"]
        assert f["1.params.W"].shape == (784, 16) and f["1.params.W"].dtype == np.float32


def test_save_is_atomic_when_writing_fails(model, tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


def rewrite(path, change):
    """Apply ``change`` to the dict of arrays in an .npz and write it back."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    np.savez(path, **arrays)


def set_meta(arrays, edit):
    meta = json.loads(str(arrays[META_KEY]))
    edit(meta)
    arrays[META_KEY] = np.array(json.dumps(meta))


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        tinynet.load(tmp_path / "nope.npz")


def test_not_a_zip(tmp_path):
    (tmp_path / "m.npz").write_text("hello")
    with pytest.raises(ModelFileError, match="not a tinynet model"):
        tinynet.load(tmp_path / "m.npz")


def test_truncated_file(model, tmp_path):
    model.save(tmp_path / "m.npz")
    raw = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "m.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="m.npz"):
        tinynet.load(tmp_path / "m.npz")


def test_object_arrays_are_never_unpickled(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["1.params.W"] = np.array([{"evil": "pickle"}], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="pickled Python objects"):
        tinynet.load(path)


def test_unknown_layer_type(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    rewrite(path, lambda a: set_meta(a, lambda m: m["layers"][2].update(type="Teleport")))
    with pytest.raises(ModelFileError, match="layer 2 has unknown type 'Teleport'"):
        tinynet.load(path)


def test_wrong_parameter_shape(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    rewrite(path, lambda a: a.update({"3.params.W": np.zeros((16, 9), np.float32)}))
    with pytest.raises(ModelFileError, match=r"3.params.W has shape \(16, 9\).*\(16, 8\)"):
        tinynet.load(path)


def test_newer_format_version(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    rewrite(path, lambda a: set_meta(a, lambda m: m.update(format_version=99)))
    with pytest.raises(ModelFileError, match="newer tinynet"):
        tinynet.load(path)


def test_nan_weights(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)

    def poison(arrays):
        arrays["5.params.b"] = arrays["5.params.b"].copy()
        arrays["5.params.b"][3] = np.nan

    rewrite(path, poison)
    with pytest.raises(ModelFileError, match="5.params.b holds NaN"):
        tinynet.load(path)


def test_npz_without_tinynet_description(tmp_path):
    np.savez(tmp_path / "m.npz", W=np.zeros(3))
    with pytest.raises(ModelFileError, match="no __tinynet__ entry"):
        tinynet.load(tmp_path / "m.npz")


def test_zip_that_is_not_an_npz(tmp_path):
    with zipfile.ZipFile(tmp_path / "m.npz", "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(ModelFileError):
        tinynet.load(tmp_path / "m.npz")


def test_predict_takes_the_layout_of_fit_and_forward(model, images):
    """(N, 1, H, W) as fit and forward take it; (N, H, W) grey images get the channel axis."""
    p = model.predict(images)
    np.testing.assert_array_equal(model.predict(images[:, None]), p)
    logits = model.forward(images[:, None])
    np.testing.assert_allclose(p, tinynet.losses.softmax(logits), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model.predict(np.zeros((2, 3, 28, 28), np.float32))


def test_predict_returns_as_many_classes_as_the_network_has_outputs():
    rng = np.random.default_rng(0)
    three = tinynet.Sequential([tinynet.Flatten(), tinynet.Dense(28 * 28, 3, rng=rng)])
    assert three.predict(np.zeros((4, 28, 28), np.float32)).shape == (4, 3)
    assert three.predict(np.zeros((0, 28, 28), np.float32)).shape == (0, 3)
    cnn = networks.small_cnn(rng)
    assert cnn.predict(np.zeros((0, 1, 28, 28), np.float32)).shape == (0, 10)
