import gzip
import http.server
import os
import signal
import struct
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tinynet import data, networks, ops, recipes
from tinynet.errors import DataError
from tinynet.layers import Dense, Dropout, Flatten, ReLU
from tinynet.model import Sequential


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST arrays. Skipped only when no copy can be found and TINYNET_DATA is
    unset; with TINYNET_DATA set, a missing or broken copy is a failure, not a skip."""
    if os.environ.get("TINYNET_DATA"):
        return data.load_mnist(download=False)
    try:
        return data.load_mnist(download=False)
    except DataError as exc:
        pytest.skip(f"MNIST not available (set TINYNET_DATA to a folder with it): {exc}")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def blobs(n=600, seed=0):
    """Three separable clusters drawn as 28x28 uint8 'images'."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.uint8)
    centres = rng.random((3, 28, 28)) * 200
    x = np.clip(centres[y] + rng.normal(0, 20, (n, 28, 28)), 0, 255).astype(np.uint8)
    return x, y


def tiny_net(rng):
    return Sequential([Flatten(), Dense(784, 16, rng=rng), ReLU(), Dropout(0.2, rng=rng),
                       Dense(16, 10, init="glorot", rng=rng)])


def interrupted_run(monkeypatch, at_evaluation, *args, **kwargs):
    """Run ``recipes.run(*args, **kwargs)`` with Ctrl-C (a real SIGINT) during its
    ``at_evaluation``-th evaluation; it must stop with KeyboardInterrupt.

    Networks trained side by side run in threads, and the main thread takes the signal
    between its 0.2 s joins of them. A real epoch and evaluation last seconds, so the press is
    taken long before either ends; the tests' networks finish a whole epoch in milliseconds.
    So once the signal is sent, every training thread waits at its next step or evaluation
    until the main thread has taken it, as a real press would be taken in time."""
    from tinynet import train

    real_evaluate, real_step = train.evaluate, train._Run.step
    calls, lock, sent = {"n": 0}, threading.Lock(), threading.Event()

    def wait_until_taken():
        if sent.is_set() and threading.current_thread() is not threading.main_thread():
            taker = signal.getsignal(signal.SIGINT).__self__   # the main thread's handler
            deadline = time.monotonic() + 10
            while not taker.requested and time.monotonic() < deadline:
                time.sleep(0.001)

    def evaluate_with_ctrl_c(*a, **k):
        with lock:          # two threads evaluating at once must not both count the same n
            calls["n"] += 1
            press = calls["n"] == at_evaluation
        if press:
            sent.set()
            os.kill(os.getpid(), signal.SIGINT)
        wait_until_taken()
        return real_evaluate(*a, **k)

    def step_once_a_press_is_taken(self, *a, **k):
        wait_until_taken()
        return real_step(self, *a, **k)

    monkeypatch.setattr(train, "evaluate", evaluate_with_ctrl_c)
    monkeypatch.setattr(train._Run, "step", step_once_a_press_is_taken)
    try:
        with pytest.raises(KeyboardInterrupt):
            recipes.run(*args, **kwargs)
    finally:
        monkeypatch.setattr(train, "evaluate", real_evaluate)
        monkeypatch.setattr(train._Run, "step", real_step)


@pytest.fixture
def tiny_recipe(monkeypatch):
    """A registered recipe 'tiny' (two epochs of tiny_net) and blob data to train it on."""
    monkeypatch.setitem(networks.BUILDERS, "tiny", tiny_net)
    monkeypatch.setitem(recipes.RECIPES, "tiny",
                        recipes.Recipe(model="tiny", epochs=2, batch_size=50, lr=3e-3))
    x, y = blobs()
    return (x[:500], y[:500], x[500:], y[500:])


class LocalMirror:
    """An HTTP server on localhost over a folder, standing in for an MNIST mirror.

    ``mode``: 'ok' serves the files; '404' answers Not Found; 'short' closes the connection
    half-way through a file; 'corrupt' serves valid gzip of the wrong bytes.
    """

    def __init__(self, folder, mode="ok"):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if mode == "404":
                    self.send_error(404)
                    return
                if mode == "corrupt":
                    body = gzip.compress(b"wrong bytes")
                else:
                    body = (Path(folder) / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == "short" else body)
                self.wfile.flush()
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def encoded(ext, image):
    """``image`` encoded by OpenCV as the file format of extension ``ext``, as bytes."""
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def png_bytes(width, height, idat=b""):
    """A well-formed PNG whose header claims width x height, with the given IDAT payload
    (no real pixel data is needed to test header checks)."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


@pytest.fixture(params=["reference", "fast"])
def backend(request):
    """Run the test once under each ops backend (gradient checks, layer behaviour)."""
    with ops.use(request.param):
        yield request.param


def seven(size=200, width=12, dark_on_light=True):
    """A 7 drawn with a pen on a square canvas, uint8."""
    canvas = np.zeros((size, size), np.uint8)
    s = size / 200
    points = np.array([[50, 40], [150, 40], [85, 170]]) * s
    cv2.polylines(canvas, [points.astype(np.int32)], False, 255, max(1, round(width * s)),
                  cv2.LINE_AA)
    return 255 - canvas if dark_on_light else canvas


@pytest.fixture
def small_model(tmp_path):
    """A small untrained MLP saved as tmp_path/small.npz (a valid model file)."""
    from tinynet import networks

    path = tmp_path / "small.npz"
    networks.mlp(np.random.default_rng(0), hidden=(8,)).save(path)
    return path


@pytest.fixture(autouse=True, scope="session")
def fast_kernels_from_the_start():
    """The fast backend starts on NumPy stand-ins until it is first needed (see
    ``tinynet.ops``); tests that compare the kernels must get the kernels, so the session
    binds them at once. tests/test_winograd.py checks the NumPy start in a fresh process."""
    from tinynet import ops

    if ops.backend() == "fast":
        ops.use("fast")
