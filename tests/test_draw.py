"""Tests for examples/draw.py: the canvas and prediction logic without a window, and the
window itself under a virtual display when Xvfb is installed."""

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


@pytest.mark.skipif(shutil.which("Xvfb") is None,
                    reason="Xvfb is not installed, so the window cannot be opened in a test")
def test_window_runs_under_xvfb(tmp_path):
    if not gui_available():
        pytest.skip("this OpenCV build has no GUI (opencv-python-headless); "
                    "install opencv-python to test the window")
    weights = ROOT / "weights" / "mnist.npz"
    if not weights.exists():
        pytest.skip("weights/mnist.npz not trained yet")
    display = ":97"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        env = dict(os.environ, DISPLAY=display)
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "draw.py"),
                                 "--model", str(weights), "--digits", str(tmp_path),
                                 "--frames", "20"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
