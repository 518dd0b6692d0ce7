"""MNIST: reading and writing IDX files, finding the data, downloading and verifying it.

The IDX format (LeCun's) is tiny: a 4-byte magic number whose 3rd byte is the element type and
4th byte the number of dimensions, then one big-endian uint32 per dimension, then the data,
row-major. MNIST images are ``0x00000803`` (uint8, 3 dims: N, 28, 28); labels ``0x00000801``.

``load_mnist`` looks for the four files (raw or gzipped) in this order: the ``path`` argument,
the ``TINYNET_DATA`` environment variable, the user cache folder (``~/.cache/tinynet/mnist``,
or ``$XDG_CACHE_HOME/tinynet/mnist``), and finally downloads them from a public mirror into the
cache. Every file's uncompressed bytes are checked against the published SHA-256.
"""

import contextlib
import gzip
import hashlib
import io
import math
import os
import sys
import time
import zlib

import numpy as np

from .errors import DataError
from .files import atomic_write

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32,
             0x0D: np.float32, 0x0E: np.float64}
IDX_CODES = {np.dtype(v): k for k, v in IDX_TYPES.items()}
MAX_IDX_DIMS = 32   # NumPy's limit was 32 for years; MNIST uses 1 and 3
MAX_IDX_BYTES = 1 << 30  # 1 GiB uncompressed (MNIST's largest file is 47 MB): no gzip bombs

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the uncompressed files, as published for MNIST.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

HOW_TO_GET_MNIST = (
    "Download the four MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from a mirror such as "
    f"{MNIST_MIRRORS[0]} into one folder, then pass that folder (--data DIR) or set "
    "TINYNET_DATA=DIR."
)


# -- IDX ---------------------------------------------------------------------------------

def parse_idx(raw, name="<bytes>"):
    """Decode IDX bytes into a NumPy array, checking the header against the data length."""
    if len(raw) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataError(f"{name}: wrong magic number {raw[:4].hex()} (not an IDX file)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or ndim > MAX_IDX_DIMS:
        raise DataError(f"{name}: IDX header claims {ndim} dimensions (expected 1 to "
                        f"{MAX_IDX_DIMS})")
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[raw[2]]).newbyteorder(">")
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if len(raw) - header != expected:
        raise DataError(
            f"{name}: header says shape {shape} ({expected} data bytes) but the file has "
            f"{len(raw) - header} data bytes" + (" (truncated)" if len(raw) - header < expected
                                                 else ""))
    try:
        data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    except ValueError as exc:  # e.g. an empty array whose other dimensions are absurd
        raise DataError(f"{name}: unusable IDX shape {shape} ({exc})") from None
    with small_pages():
        return data.astype(dtype.newbyteorder("="))


@contextlib.contextmanager
def small_pages():
    """Allocate the block's new arrays without asking Linux for 2 MB pages.

    NumPy asks for them (madvise) on every array of 4 MB or more, and on the virtual
    machines tinynet is developed on, the first write to such a page cost about 2.5 ms:
    0.48 s to fill a new 188 MB array (the training set as float32) against 0.08 s with
    ordinary 4 KB pages, most of loading MNIST. Arrays made once and then read, like a data
    set, gain nothing from the larger pages. No-op where NumPy has no such switch."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if switch is None:
        yield
        return
    before = switch(False)
    try:
        yield
    finally:
        switch(before)


def read_bytes(path):
    """File contents, gunzipped when the name ends in .gz."""
    path = os.fspath(path)
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read(MAX_IDX_BYTES + 1)
        if len(raw) > MAX_IDX_BYTES:
            raise DataError(f"{path}: more than {MAX_IDX_BYTES} bytes"
                            f"{' once unzipped' if path.endswith('.gz') else ''}; "
                            "too large for an MNIST-style IDX file")
        return raw
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def read_idx(path):
    """Read a raw or gzipped IDX file into an array."""
    return parse_idx(read_bytes(path), os.fspath(path))


def write_idx(path, array):
    """Write an array as IDX (gzipped when the name ends in .gz), atomically."""
    array = np.asarray(array)
    if array.dtype not in IDX_CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    header += np.array(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path = os.fspath(path)
    if path.endswith(".gz"):
        raw = gzip.compress(raw)
    atomic_write(path, lambda f: f.write(raw))


# -- finding MNIST -----------------------------------------------------------------------

def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinynet", "mnist")


def _find_file(folder, stem):
    for candidate in (stem, stem + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _missing(folder, stems):
    return [s for s in stems if not _find_file(folder, s)]


def _stems(parts):
    unknown = set(parts) - {"train", "test"}
    if unknown or not parts:
        raise ValueError(f"parts must be 'train' and/or 'test', got {parts!r}")
    return [stem for key, stem in MNIST_FILES.items() if key.split("_")[0] in parts]


def _check_folder(folder, source):
    """A --data folder or $TINYNET_DATA that is not a folder at all gets its own message:
    "missing MNIST files" would send the user looking for files in the wrong place."""
    if not os.path.exists(folder):
        raise DataError(f"{folder} (from {source}): no such folder. {HOW_TO_GET_MNIST}")
    if not os.path.isdir(folder):
        raise DataError(f"{folder} (from {source}): is a file, not a folder; give the folder "
                        "that holds the four MNIST files")


def find_mnist(path=None, download=True, parts=("train", "test"), source="argument"):
    """The folder holding the MNIST files: argument, $TINYNET_DATA, cache, download.

    ``parts`` says which files are needed (``"test"`` alone needs only the two t10k files);
    ``source`` is how the caller names ``path`` in messages (``"--data"`` for a command line).
    """
    stems = _stems(parts)
    for named, folder in ((source, path), ("TINYNET_DATA", os.environ.get("TINYNET_DATA"))):
        if folder:
            folder = os.fspath(folder)
            _check_folder(folder, named)
            missing = _missing(folder, stems)
            if missing:
                raise DataError(f"{folder} (from {named}): missing MNIST files "
                                f"{', '.join(missing)}. {HOW_TO_GET_MNIST}")
            return folder
    cached = cache_dir()
    if os.path.isdir(cached) and not _missing(cached, stems):
        return cached
    if not download:
        raise DataError(f"MNIST not found (no argument, TINYNET_DATA unset, nothing in "
                        f"{cached}). {HOW_TO_GET_MNIST}")
    download_mnist(cached, stems=stems)
    return cached


def load_mnist(path=None, verify=True, download=True, parts=("train", "test"),
               source="argument"):
    """(x_train, y_train, x_test, y_test) as uint8 arrays: images (N, 28, 28), labels (N,).

    ``path`` is a folder with the four files, raw or gzipped. ``verify`` checks the SHA-256 of
    each uncompressed file against the published MNIST checksums. With ``parts=("test",)``
    only the test files are needed and read, and the training arrays are returned as None.
    """
    folder = find_mnist(path, download=download, parts=parts, source=source)
    arrays = dict.fromkeys(MNIST_FILES)
    for key, stem in MNIST_FILES.items():
        if stem not in _stems(parts):
            continue
        file = _find_file(folder, stem)
        raw = read_bytes(file)
        if verify:
            digest = hashlib.sha256(raw).hexdigest()
            if digest != MNIST_SHA256[stem]:
                raise DataError(f"{file}: checksum mismatch (sha256 {digest[:16]}..., expected "
                                f"{MNIST_SHA256[stem][:16]}...); the file is corrupt or not "
                                "the original MNIST")
        arrays[key] = parse_idx(raw, file)
    for split in parts:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise DataError(f"{folder}: {split} images have shape {images.shape} and dtype "
                            f"{images.dtype}, expected (N, 28, 28) uint8")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise DataError(f"{folder}: {split} labels have shape {labels.shape}, expected (N,)")
        if len(images) != len(labels):
            raise DataError(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise DataError(f"{folder}: {split} labels contain {labels.max()}, expected 0-9")
    return (arrays["train_images"], arrays["train_labels"],
            arrays["test_images"], arrays["test_labels"])


# -- downloading -------------------------------------------------------------------------

def download_mnist(folder, mirrors=None, checksums=None, timeout=30, quiet=False, stems=None):
    """Fetch the gzipped files (all four, or ``stems``) into ``folder``, verifying each
    before it is kept.

    Each file is downloaded to a temporary name and renamed only after its checksum passes,
    so the folder never holds a partial or wrong file. Mirrors are tried in order;
    ``$TINYNET_MNIST_MIRROR`` (a base URL) is tried first when set. Folders this call
    created are removed again if it fails before putting anything in them.
    """
    created = _missing_folders(folder)
    try:
        _download(folder, mirrors, checksums, timeout, quiet, stems)
    except BaseException:
        for made in created:          # deepest first: each is empty once its child is gone
            try:
                os.rmdir(made)
            except OSError:
                break                 # not empty (a file was completed) or not ours to remove
        raise


def _missing_folders(folder):
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def _download(folder, mirrors, checksums, timeout, quiet, stems):
    if mirrors is None:
        mirrors = list(MNIST_MIRRORS)
        if os.environ.get("TINYNET_MNIST_MIRROR"):
            mirrors.insert(0, os.environ["TINYNET_MNIST_MIRROR"])
    checksums = checksums or MNIST_SHA256
    os.makedirs(folder, exist_ok=True)
    import urllib.error  # here, not at the top: it costs every `import tinynet` 25 ms

    for stem in (stems or MNIST_FILES.values()):
        target = os.path.join(folder, stem + ".gz")
        if os.path.isfile(target):
            continue
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + stem + ".gz"
            try:
                payload = _fetch(url, timeout, quiet)
                raw = gzip.decompress(payload)
            except (urllib.error.URLError, OSError, EOFError, zlib.error, ValueError) as exc:
                errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
                continue
            digest = hashlib.sha256(raw).hexdigest()
            if digest != checksums[stem]:
                errors.append(f"{url}: checksum mismatch (got {digest[:16]}...)")
                continue
            atomic_write(target, lambda f, raw=payload: f.write(raw))
            break
        else:
            raise DataError(f"could not download {stem}.gz: " + "; ".join(errors) +
                            f". No network? {HOW_TO_GET_MNIST}")


def _fetch(url, timeout, quiet):
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        buffer = io.BytesIO()
        start = last = time.monotonic()
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                break
            buffer.write(chunk)
            now = time.monotonic()
            if not quiet and (now - last > 0.5 or (total and buffer.tell() == total)):
                last = now
                done = buffer.tell()
                pct = f"{100 * done / total:5.1f}%" if total else ""
                print(f"\rdownloading {url.rsplit('/', 1)[-1]} {pct} "
                      f"{done / 1e6:.1f} MB {done / 1e6 / max(now - start, 1e-9):.1f} MB/s",
                      end="", file=sys.stderr, flush=True)
        if not quiet:
            print(file=sys.stderr)
        if total and buffer.tell() != total:
            raise OSError(f"connection closed after {buffer.tell()} of {total} bytes")
        return buffer.getvalue()


# -- preparing batches -------------------------------------------------------------------

def to_float(images):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1], the layout layers expect.

    One division straight from uint8 into the float32 result: for the training set,
    ``astype(float32) / 255.0`` (a conversion, then a division into a second 188 MB array)
    took 0.5-1.1 s here against 0.05 s, with the same values bit for bit."""
    images = np.asarray(images)
    with small_pages():
        out = np.empty(images.shape, dtype=np.float32)
    return np.divide(images, np.float32(255), out=out, dtype=np.float32)[:, None]


__all__ = ["load_mnist", "read_idx", "write_idx", "parse_idx", "find_mnist", "download_mnist",
           "cache_dir", "to_float", "MNIST_SHA256", "MNIST_FILES"]

