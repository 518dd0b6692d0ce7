import gzip
import hashlib
import os

import numpy as np
import pytest
from conftest import LocalMirror

from tinynet import data
from tinynet.errors import DataError


def fake_mnist(folder, n_train=12, n_test=5, gz=True, rng=None):
    """Write four small IDX files in MNIST's layout; return their checksums."""
    rng = rng or np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    sums = {}
    for stem, array in arrays.items():
        data.write_idx(os.path.join(folder, stem + (".gz" if gz else "")), array)
        sums[stem] = hashlib.sha256(data.read_bytes(
            os.path.join(folder, stem + (".gz" if gz else "")))).hexdigest()
    return arrays, sums


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, name, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    data.write_idx(tmp_path / name, array)
    back = data.read_idx(tmp_path / name)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_mnist_layout(tmp_path):
    data.write_idx(tmp_path / "x", np.zeros((3, 28, 28), dtype=np.uint8))
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:16] == (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    assert len(raw) == 16 + 3 * 784


def test_truncated_idx_is_reported(tmp_path):
    data.write_idx(tmp_path / "x", np.zeros((3, 28, 28), dtype=np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-100])
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(tmp_path / "x")


def test_wrong_magic_is_reported(tmp_path):
    (tmp_path / "x").write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="wrong magic"):
        data.read_idx(tmp_path / "x")


def test_count_larger_than_data_is_reported(tmp_path):
    # header claims 5 labels, the file holds 3
    (tmp_path / "x").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02\x03")
    with pytest.raises(DataError, match=r"shape \(5,\).*3 data bytes"):
        data.read_idx(tmp_path / "x")


def test_unreadable_gzip_is_reported(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="x.gz: cannot read"):
        data.read_idx(tmp_path / "x.gz")


def test_load_mnist_reads_raw_or_gzipped_files(tmp_path):
    for gz in (True, False):
        folder = tmp_path / str(gz)
        folder.mkdir()
        arrays, _ = fake_mnist(folder, gz=gz)
        x, y, xt, yt = data.load_mnist(folder, verify=False)
        np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte"])
        np.testing.assert_array_equal(yt, arrays["t10k-labels-idx1-ubyte"])
        assert x.shape == (12, 28, 28) and y.shape == (12,)


def test_checksum_is_verified(tmp_path):
    fake_mnist(tmp_path)
    with pytest.raises(DataError, match="checksum mismatch"):
        data.load_mnist(tmp_path)


def test_image_label_count_mismatch_is_reported(tmp_path):
    fake_mnist(tmp_path)
    data.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, dtype=np.uint8))
    with pytest.raises(DataError, match="12 train images but 11 labels"):
        data.load_mnist(tmp_path, verify=False)


def test_missing_files_name_what_is_missing(tmp_path):
    fake_mnist(tmp_path)
    os.unlink(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="missing MNIST files t10k-labels-idx1-ubyte"):
        data.load_mnist(tmp_path, verify=False)


def test_environment_variable_is_used(tmp_path, monkeypatch):
    arrays, _ = fake_mnist(tmp_path)
    monkeypatch.setenv("TINYNET_DATA", str(tmp_path))
    assert data.find_mnist() == str(tmp_path)


def test_cache_is_used_after_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = tmp_path / "tinynet" / "mnist"
    cache.mkdir(parents=True)
    fake_mnist(cache)
    assert data.find_mnist() == str(cache)


def test_no_data_and_no_network_explains_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # nothing listens on port 9 of localhost: the download fails like an offline machine's
    monkeypatch.setattr(data, "MNIST_MIRRORS", ["http://127.0.0.1:9/"])
    with pytest.raises(DataError, match="TINYNET_DATA=DIR"):
        data.load_mnist()
    assert os.listdir(tmp_path) == []       # no empty cache folder left behind


def test_download_from_a_mirror_verifies_and_fills_the_cache(tmp_path):
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    arrays, sums = fake_mnist(mirror)
    server = LocalMirror(mirror)
    try:
        data.download_mnist(cache, mirrors=["http://127.0.0.1:9/", server.url],
                            checksums=sums, quiet=True)
    finally:
        server.close()
    x, y, xt, yt = data.load_mnist(cache, verify=False)
    np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte"])
    assert sorted(os.listdir(cache)) == sorted(s + ".gz" for s in data.MNIST_FILES.values())


def test_download_of_wrong_bytes_leaves_nothing_in_the_cache(tmp_path):
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    _, sums = fake_mnist(mirror)
    server = LocalMirror(mirror, 'corrupt')
    try:
        with pytest.raises(DataError, match="checksum mismatch"):
            data.download_mnist(cache, mirrors=[server.url], checksums=sums, quiet=True)
    finally:
        server.close()
    assert not cache.exists()       # the folder it made is removed again


def test_download_of_real_mnist_from_a_local_mirror(tmp_path, monkeypatch):
    source = os.environ.get("TINYNET_DATA")
    if not source or not all(os.path.exists(os.path.join(source, s + ".gz"))
                             for s in data.MNIST_FILES.values()):
        pytest.skip("needs TINYNET_DATA pointing at the gzipped MNIST files")
    server = LocalMirror(source)
    monkeypatch.delenv("TINYNET_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("TINYNET_MNIST_MIRROR", server.url)
    try:
        x, y, xt, yt = data.load_mnist()  # verifies the published checksums
    finally:
        server.close()
    assert x.shape == (60000, 28, 28) and yt.shape == (10000,)


def test_real_mnist_loads_with_published_checksums(mnist):
    x, y, xt, yt = mnist
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60000,) and xt.shape == (10000, 28, 28) and yt.shape == (10000,)
    assert list(y[:8]) == [5, 0, 4, 1, 9, 2, 1, 3]
    assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("source", ["argument", "TINYNET_DATA"])
def test_a_data_folder_that_does_not_exist_is_named_as_such(tmp_path, monkeypatch, source):
    folder = tmp_path / "mnsit"
    if source == "TINYNET_DATA":
        monkeypatch.setenv("TINYNET_DATA", str(folder))
        folder_argument = None
    else:
        monkeypatch.setenv("TINYNET_DATA", str(tmp_path / "never-read"))
        folder_argument = folder
    with pytest.raises(DataError) as info:
        data.load_mnist(folder_argument)
    assert str(info.value).startswith(f"{folder} (from {source}): no such folder. ")


@pytest.mark.parametrize("source", ["argument", "TINYNET_DATA"])
def test_a_data_path_naming_a_file_is_named_as_such(tmp_path, monkeypatch, source):
    fake_mnist(tmp_path)
    file = tmp_path / "train-images-idx3-ubyte.gz"
    monkeypatch.setenv("TINYNET_DATA", str(file))
    with pytest.raises(DataError) as info:
        data.load_mnist(file if source == "argument" else None)
    assert str(info.value) == (f"{file} (from {source}): is a file, not a folder; give the "
                               "folder that holds the four MNIST files")


def test_the_caller_names_the_source_of_the_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope \(from --data\): no such folder"):
        data.load_mnist(tmp_path / "nope", source="--data")


def test_the_test_set_alone_needs_only_the_test_files(tmp_path):
    arrays, _ = fake_mnist(tmp_path)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        os.unlink(tmp_path / f"{stem}.gz")
    x_train, y_train, x_test, y_test = data.load_mnist(tmp_path, verify=False, parts=("test",))
    assert x_train is None and y_train is None
    np.testing.assert_array_equal(x_test, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    with pytest.raises(DataError, match="missing MNIST files train-images-idx3-ubyte, "
                                        "train-labels-idx1-ubyte"):
        data.load_mnist(tmp_path, verify=False)


def test_a_failed_download_of_the_test_set_fetches_only_it_and_leaves_no_folder(tmp_path):
    mirror, cache = tmp_path / "mirror", tmp_path / "cache" / "tinynet" / "mnist"
    mirror.mkdir()
    _, sums = fake_mnist(mirror)
    os.unlink(mirror / "t10k-labels-idx1-ubyte.gz")          # the mirror lacks one file
    server = LocalMirror(mirror)
    try:
        with pytest.raises(DataError, match="could not download t10k-labels-idx1-ubyte.gz"):
            data.download_mnist(cache, mirrors=[server.url], checksums=sums, quiet=True,
                                stems=["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
        # the image file was complete and verified, so it stays; nothing else was fetched
        assert os.listdir(cache) == ["t10k-images-idx3-ubyte.gz"]
        os.unlink(cache / "t10k-images-idx3-ubyte.gz")
        os.rmdir(cache)
        server.close()
        server = LocalMirror(mirror, "404")
        with pytest.raises(DataError):
            data.download_mnist(cache, mirrors=[server.url], checksums=sums, quiet=True,
                                stems=["t10k-images-idx3-ubyte"])
        assert os.listdir(tmp_path / "cache" / "tinynet") == []   # only what it created went
    finally:
        server.close()


# -- bad data files and downloads ------------------------------------------------


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


def test_to_float_scales_bytes_to_float32_images_with_a_channel_axis():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    x = data.to_float(images)
    assert x.dtype == np.float32 and x.shape == (1, 1, 16, 16)
    # bit for bit the float32 division v / 255, so 255 -> exactly 1 and 51 -> 0.2f
    np.testing.assert_array_equal(x[0, 0], images[0].astype(np.float32) / np.float32(255))
    assert x[0, 0, 15, 15] == 1.0 and x[0, 0, 3, 3] == np.float32(0.2)
    assert data.to_float(np.zeros((0, 28, 28), np.uint8)).shape == (0, 1, 28, 28)


def test_small_pages_restores_numpys_huge_page_setting():
    core = getattr(np, "_core", None) or np.core
    switch = getattr(core.multiarray, "_set_madvise_hugepage", None)
    if switch is None:
        pytest.skip("this NumPy has no huge-page switch")
    for setting in (True, False):
        switch(setting)
        with data.small_pages():
            assert switch(False) is False           # off inside the block
            block = np.ones((1 << 21,), np.float32)  # 8 MB: NumPy would ask for huge pages
        assert switch(setting) is setting           # back as it was
    switch(True)
    assert block.sum() == 1 << 21
