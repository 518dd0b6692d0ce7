"""Tests for examples/draw.py: the canvas and prediction logic without a window, and the
window itself under a virtual display when Xvfb is installed."""

import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("draw", ROOT / "examples" / "draw.py")
draw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(draw)


class FakeModel:
    """Stands in for a trained model: 'probability' of digit d = share of ink in column band d."""

    def predict(self, images):
        bands = np.stack([images[:, :, 2 * d + 4:2 * d + 6].sum(axis=(1, 2))
                          for d in range(10)], axis=1) + 1e-3
        return bands / bands.sum(axis=1, keepdims=True)


def stroke(canvas, points):
    canvas.begin(*points[0])
    for p in points[1:]:
        canvas.move(*p)
    canvas.end()


def test_canvas_draws_strokes_and_clears():
    canvas = draw.Canvas(size=100, pen=8)
    assert canvas.is_empty and canvas.image.max() == 0
    stroke(canvas, [(50, 10), (50, 50), (50, 90)])
    assert not canvas.is_empty and len(canvas.strokes) == 1
    assert canvas.image[50, 50] == 255 and canvas.image[50, 10] == 0
    canvas.move(90, 90)                       # pen is up: nothing drawn
    assert canvas.image[90, 90] == 0
    canvas.clear()
    assert canvas.is_empty and canvas.image.max() == 0


def test_canvas_takes_opencv_mouse_events():
    canvas = draw.Canvas(size=100)
    canvas.on_mouse(cv2.EVENT_LBUTTONDOWN, 20, 20)
    canvas.on_mouse(cv2.EVENT_MOUSEMOVE, 80, 20)
    canvas.on_mouse(cv2.EVENT_LBUTTONUP, 80, 20)
    canvas.on_mouse(cv2.EVENT_MOUSEMOVE, 80, 80)
    assert canvas.image[20, 50] == 255 and canvas.image[80, 80] == 0


def test_version_changes_on_every_edit():
    canvas = draw.Canvas()
    v0 = canvas.version
    canvas.begin(10, 10)
    canvas.move(20, 20)
    assert canvas.version == v0 + 2
    canvas.clear()
    assert canvas.version == v0 + 3


def test_predict_top3_blank_and_drawn():
    canvas = draw.Canvas()
    assert draw.predict_top3(FakeModel(), canvas.image) == []
    stroke(canvas, [(140, 40), (140, 240)])   # a vertical 1: centred, so band 5
    top3 = draw.predict_top3(FakeModel(), canvas.image)
    assert len(top3) == 3 and top3[0][0] == 5
    probs = [p for _, p in top3]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_predict_top3_with_the_trained_model():
    weights = ROOT / "weights" / "mnist.npz"
    if not weights.exists():
        pytest.skip("weights/mnist.npz not trained yet")
    import tinynet
    canvas = draw.Canvas()
    stroke(canvas, [(60, 50), (210, 50), (120, 250)])   # a 7
    assert draw.predict_top3(tinynet.load(weights), canvas.image)[0][0] == 7


def test_render_view_shows_canvas_and_panel():
    canvas = draw.Canvas(size=200)
    stroke(canvas, [(100, 20), (100, 180)])
    view = draw.render_view(canvas, [(1, 0.9), (7, 0.05), (4, 0.01)])
    assert view.shape == (200, 200 + draw.PANEL_WIDTH, 3)
    assert (view[:, :200, 0] == canvas.image).all()
    assert view[:, 201:].max() > 0              # text was written in the panel


def test_keys_clear_save_and_quit(tmp_path):
    canvas = draw.Canvas()
    assert draw.handle_key(ord("s"), canvas, [], tmp_path) is None      # nothing to save
    stroke(canvas, [(140, 40), (140, 240)])
    message = draw.handle_key(ord("s"), canvas, [(1, 0.9)], tmp_path)
    assert message.endswith("1_drawn_1.png") and (tmp_path / "1_drawn_1.png").exists()
    draw.handle_key(ord("7"), canvas, [(1, 0.9)], tmp_path)
    assert (tmp_path / "7_drawn_1.png").exists()
    draw.handle_key(ord("s"), canvas, [(1, 0.9)], tmp_path)
    assert (tmp_path / "1_drawn_2.png").exists()
    saved = cv2.imread(str(tmp_path / "1_drawn_1.png"), cv2.IMREAD_GRAYSCALE)
    assert (saved == canvas.image).all()
    assert draw.handle_key(ord("c"), canvas, [], tmp_path) is None and canvas.is_empty
    assert draw.handle_key(ord("q"), canvas, [], tmp_path) == "quit"
    assert draw.handle_key(27, canvas, [], tmp_path) == "quit"


def gui_available():
    return draw.gui_problem() is None or "DISPLAY" in draw.gui_problem()


def test_headless_opencv_gives_a_clear_error(tmp_path, monkeypatch):
    if gui_available():
        pytest.skip("this OpenCV has a GUI; the headless error cannot be provoked")
    monkeypatch.setattr(draw.tinynet, "load", lambda path: FakeModel())
    with pytest.raises(draw.TinynetError, match="no GUI support.*opencv-python"):
        draw.run(FakeModel(), tmp_path, max_frames=1)
    assert draw.main(["--model", "unused", "--frames", "1"]) == 1


def test_no_display_gives_a_clear_error(tmp_path, monkeypatch, capsys):
    if not sys.platform.startswith("linux") or not gui_available():
        pytest.skip("needs Linux and an OpenCV with a GUI")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(draw.tinynet, "load", lambda path: FakeModel())
    assert draw.main(["--model", "unused", "--frames", "1"]) == 1
    assert "no display" in capsys.readouterr().err


@contextlib.contextmanager
def virtual_display(number):
    """An Xvfb server on :number for the duration, ready (listening) when entered."""
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "800x600x24"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        socket = Path(f"/tmp/.X11-unix/X{number}")      # the server is ready once it listens
        deadline = time.monotonic() + 20
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.skipif(shutil.which("Xvfb") is None,
                    reason="Xvfb is not installed, so the window cannot be opened in a test")
def test_window_runs_under_xvfb(tmp_path):
    if not gui_available():
        pytest.skip("this OpenCV build has no GUI (opencv-python-headless); "
                    "install opencv-python to test the window")
    weights = ROOT / "weights" / "mnist.npz"
    if not weights.exists():
        pytest.skip("weights/mnist.npz not trained yet")
    with virtual_display(97) as display:
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "draw.py"),
                                 "--model", str(weights), "--digits", str(tmp_path),
                                 "--frames", "20"], env=dict(os.environ, DISPLAY=display),
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


class X11:
    """Just enough of libX11 (through ctypes) to find a window by name and ask it to close
    as a window manager's close button does: a WM_DELETE_WINDOW message."""

    class ClientMessage(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                    ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                    ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5),
                    ("pad", ctypes.c_long * 24)]        # an XEvent is 24 longs at most

    def __init__(self, display):
        lib = ctypes.CDLL(ctypes.util.find_library("X11"))
        lib.XOpenDisplay.restype = ctypes.c_void_p
        lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
        lib.XDefaultRootWindow.restype = ctypes.c_ulong
        lib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        lib.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong] + [ctypes.c_void_p] * 4
        lib.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong,
                                   ctypes.POINTER(ctypes.c_char_p)]
        lib.XInternAtom.restype = ctypes.c_ulong
        lib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        lib.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int,
                                   ctypes.c_long, ctypes.c_void_p]
        lib.XFlush.argtypes = [ctypes.c_void_p]
        self.lib, self.dpy = lib, lib.XOpenDisplay(display.encode())
        assert self.dpy, f"cannot open display {display}"

    def windows(self, name):
        root, parent = ctypes.c_ulong(), ctypes.c_ulong()
        children, count = ctypes.POINTER(ctypes.c_ulong)(), ctypes.c_uint()
        self.lib.XQueryTree(self.dpy, self.lib.XDefaultRootWindow(self.dpy), ctypes.byref(root),
                            ctypes.byref(parent), ctypes.byref(children), ctypes.byref(count))
        found = []
        for i in range(count.value):
            title = ctypes.c_char_p()
            if self.lib.XFetchName(self.dpy, children[i], ctypes.byref(title)) and title.value:
                if name in title.value.decode(errors="replace"):
                    found.append(children[i])
        return found

    def close(self, window):
        event = self.ClientMessage(type=33, send_event=1, display=self.dpy, window=window,
                                   message_type=self.lib.XInternAtom(self.dpy, b"WM_PROTOCOLS",
                                                                     0), format=32)
        event.data[0] = self.lib.XInternAtom(self.dpy, b"WM_DELETE_WINDOW", 0)
        self.lib.XSendEvent(self.dpy, window, 0, 0, ctypes.byref(event))
        self.lib.XFlush(self.dpy)


@pytest.mark.skipif(shutil.which("Xvfb") is None or ctypes.util.find_library("X11") is None,
                    reason="Xvfb and libX11 are needed to open and close the window in a test")
def test_the_close_button_ends_the_program_and_qt_prints_no_font_warnings(tmp_path):
    if not gui_available():
        pytest.skip("this OpenCV build has no GUI")
    weights = ROOT / "weights" / "mnist.npz"
    if not weights.exists():
        pytest.skip("weights/mnist.npz not trained yet")
    program = None
    with virtual_display(96) as display:
        try:
            program = subprocess.Popen([sys.executable, str(ROOT / "examples" / "draw.py"),
                                        "--model", str(weights), "--digits", str(tmp_path)],
                                       env=dict(os.environ, DISPLAY=display),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
            x11 = X11(display)
            deadline = time.monotonic() + 30
            while not x11.windows("tinynet") and time.monotonic() < deadline:
                time.sleep(0.2)
            windows = x11.windows("tinynet")
            assert windows, "the drawing window did not appear"
            time.sleep(0.5)
            for window in windows:
                x11.close(window)
            stdout, stderr = program.communicate(timeout=15)  # ends by itself, no key pressed
            assert program.returncode == 0, stderr
            assert "QFontDatabase" not in stderr and "Traceback" not in stderr
        finally:
            if program is not None and program.poll() is None:
                program.kill()
