"""Draw a digit with the mouse and watch the network read it as you draw.

    python examples/draw.py [--model weights/mnist.npz] [--digits digits]

Keys: c clears, s saves the drawing into digits/ labelled with the network's top guess,
0-9 save it labelled with that digit (when the guess is wrong), q or Esc quits.

The window is only a thin shell: `Canvas` holds the strokes and renders them, and
`predict_top3` reads the drawing with `tinynet.read`, the same path as examples/mnist.py,
so both are tested without a display (tests/test_draw.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tinynet  # noqa: E402
from tinynet.errors import ImageError, TinynetError  # noqa: E402

WINDOW = "tinynet: draw a digit"
PANEL_WIDTH = 220


class Canvas:
    """A square drawing surface: white pen strokes on black, like MNIST.

    Feed it stroke events (`begin`, `move`, `end`) or raw OpenCV mouse events
    (`on_mouse`); `image` is the drawing as a uint8 array.
    """

    def __init__(self, size: int = 280, pen: int = 18):
        self.size, self.pen = size, pen
        self.image = np.zeros((size, size), np.uint8)
        self.strokes: list[list[tuple[int, int]]] = []
        self.drawing = False
        self.version = 0          # bumped on every change, so the caller knows to re-predict

    def begin(self, x: int, y: int) -> None:
        """Put the pen down at (x, y)."""
        self.drawing = True
        self.strokes.append([(int(x), int(y))])
        cv2.circle(self.image, (int(x), int(y)), self.pen // 2, 255, -1, cv2.LINE_AA)
        self.version += 1

    def move(self, x: int, y: int) -> None:
        """Drag the pen to (x, y), drawing a line if it is down."""
        if not self.drawing:
            return
        last = self.strokes[-1][-1]
        self.strokes[-1].append((int(x), int(y)))
        cv2.line(self.image, last, (int(x), int(y)), 255, self.pen, cv2.LINE_AA)
        self.version += 1

    def end(self) -> None:
        """Lift the pen."""
        self.drawing = False

    def clear(self) -> None:
        """Erase everything."""
        self.image[:] = 0
        self.strokes.clear()
        self.drawing = False
        self.version += 1

    @property
    def is_empty(self) -> bool:
        return not self.strokes

    def on_mouse(self, event, x, y, flags=0, param=None) -> None:
        """An OpenCV mouse callback: left button draws."""
        if event == cv2.EVENT_LBUTTONDOWN:
            self.begin(x, y)
        elif event == cv2.EVENT_MOUSEMOVE:
            self.move(min(max(x, 0), self.size - 1), min(max(y, 0), self.size - 1))
        elif event == cv2.EVENT_LBUTTONUP:
            self.end()


def predict_top3(model, canvas_image: np.ndarray) -> list[tuple[int, float]]:
    """The three most likely digits with their probabilities, best first ([] if blank, or
    if the model judged nothing drawn a digit).

    When the drawing holds several digits, this is about the least sure of them."""
    try:
        reading = tinynet.read(canvas_image, model)
    except ImageError:
        return []
    if not reading.digits:      # a model with a "not a digit" output rejected every glyph
        return []
    probs = min(reading.digits, key=lambda d: d.confidence).probabilities
    best = np.argsort(probs)[::-1][:3]
    return [(int(d), float(probs[d])) for d in best]


def render_view(canvas: Canvas, top3: list[tuple[int, float]]) -> np.ndarray:
    """The window's picture: the canvas and a side panel with the prediction and the keys."""
    view = np.zeros((canvas.size, canvas.size + PANEL_WIDTH, 3), np.uint8)
    view[:, :canvas.size] = canvas.image[:, :, None]
    cv2.line(view, (canvas.size, 0), (canvas.size, canvas.size), (90, 90, 90), 1)
    x = canvas.size + 12
    if top3:
        digit, prob = top3[0]
        cv2.putText(view, str(digit), (x, 90), cv2.FONT_HERSHEY_SIMPLEX, 3, (80, 255, 80), 5)
        for row, (d, p) in enumerate(top3):
            cv2.putText(view, f"{d}: {100 * p:5.1f}%", (x, 130 + 26 * row),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.7, (230, 230, 230), 1, cv2.LINE_AA)
    else:
        cv2.putText(view, "draw a digit", (x, 90), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                    (200, 200, 200), 1, cv2.LINE_AA)
    for row, text in enumerate(["c: clear", "s: save (guess)", "0-9: save as", "q: quit"]):
        cv2.putText(view, text, (x, canvas.size - 80 + 18 * row), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (160, 160, 160), 1, cv2.LINE_AA)
    return view


def save_drawing(canvas_image: np.ndarray, folder, label: int) -> Path:
    """Save as folder/<label>_drawn_<n>.png (n the first free number); returns the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while (folder / f"{label}_drawn_{n}.png").exists():
        n += 1
    path = folder / f"{label}_drawn_{n}.png"
    if not cv2.imwrite(str(path), canvas_image):
        raise TinynetError(f"{path}: could not write the image")
    return path


def handle_key(key: int, canvas: Canvas, top3, folder) -> str | None:
    """Act on a key press; returns 'quit', a message to show, or None."""
    if key in (ord("q"), 27):
        return "quit"
    if key == ord("c"):
        canvas.clear()
        return None
    label = key - ord("0") if ord("0") <= key <= ord("9") else (
        top3[0][0] if key == ord("s") and top3 else None)
    if label is None or canvas.is_empty:
        return None
    return f"saved {save_drawing(canvas.image, folder, label)}"


def gui_problem() -> str | None:
    """Why a window cannot be opened here, or None. Checked first because a Qt build of
    OpenCV aborts the whole process (uncatchably) when there is no display."""
    info = cv2.getBuildInformation()
    if any(line.split() == ["GUI:", "NONE"] for line in info.splitlines()):
        return ("this OpenCV build has no GUI support (probably opencv-python-headless); "
                "install opencv-python to use the drawing window")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return "no display to open a window on (DISPLAY is not set); run it on a desktop"
    return None


def use_existing_font_dir() -> None:
    """Point Qt at fonts that exist. The opencv-python wheels set QT_QPA_FONTDIR to a folder
    inside the package that they do not ship, and Qt then prints a QFontDatabase warning
    for every font lookup; matplotlib (a tinynet dependency) ships DejaVu fonts."""
    current = os.environ.get("QT_QPA_FONTDIR")
    if current is None or os.path.isdir(current):
        return
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    candidates = ["/usr/share/fonts/truetype/dejavu"]
    if spec is not None and spec.origin:
        candidates.append(os.path.join(os.path.dirname(spec.origin), "mpl-data", "fonts", "ttf"))
    for folder in candidates:
        if os.path.isdir(folder):
            os.environ["QT_QPA_FONTDIR"] = folder
            return


def window_closed() -> bool:
    """True once the user has closed the window (its close button, or the window manager)."""
    try:
        return cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1
    except cv2.error:   # some backends raise for a window that no longer exists
        return True


def open_window() -> None:
    """Create the window, or explain why it cannot be created."""
    problem = gui_problem()
    if problem:
        raise TinynetError(problem)
    use_existing_font_dir()
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
    except cv2.error as exc:
        raise TinynetError(f"cannot open a window: {exc.err}") from None


def run(model, folder, max_frames: int | None = None) -> None:
    """The window's event loop (max_frames stops it, for tests)."""
    open_window()
    canvas = Canvas()
    cv2.setMouseCallback(WINDOW, canvas.on_mouse)
    top3, seen, frames = [], -1, 0
    while max_frames is None or frames < max_frames:
        if canvas.version != seen:
            seen, top3 = canvas.version, predict_top3(model, canvas.image)
        cv2.imshow(WINDOW, render_view(canvas, top3))
        message = handle_key(cv2.waitKey(20) & 0xFF, canvas, top3, folder)
        if message == "quit" or window_closed():
            break
        if message:
            print(message)
        frames += 1
    cv2.destroyAllWindows()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "weights" / "mnist.npz"))
    parser.add_argument("--digits", default=str(ROOT / "digits"),
                        help="folder the drawings are saved into")
    parser.add_argument("--frames", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        model = tinynet.load(args.model)
        run(model, args.digits, args.frames)
    except TinynetError as exc:
        print(f"draw.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
