"""Matplotlib figures: predictions on custom images, training curves, confusion matrix.

Every function draws on a figure it creates and returns it; ``save`` writes it to a PNG.
Nothing here opens a window, so these work on machines without a display.
"""

import os

import numpy as np


def _pyplot():
    import matplotlib

    if not _display_available():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _display_available():
    if os.name == "nt" or os.uname().sysname == "Darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def save(fig, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def show():
    """Show open figures when there is a display; return whether anything was shown."""
    plt = _pyplot()
    if not _display_available() or plt.get_backend().lower() == "agg":
        return False
    plt.show()
    return True


#: Up to this many images the predictions figure shows them all; beyond, a summary.
GRID_MAX = 48
SUMMARY_TILES = 24
TILE_W, TILE_H = 300, 190
PREVIEW_BOX = 120


def prediction_entry(reading, max_digits=8) -> dict:
    """What the predictions figure keeps of a `Reading` or `ReadError`: a few KB per image,
    so a folder of any size can be summarised without holding its images."""
    if not reading.ok:
        return {"name": reading.name, "preview": None, "seen": [], "label": "error",
                "unsure": True, "error": True}
    seen = [np.round(d.image * 255).astype(np.uint8) for d in reading.digits[:max_digits]]
    label = reading.text if len(reading.text) <= 18 else reading.text[:16] + ".."
    return {"name": reading.name, "preview": reading.preview, "seen": seen,
            "label": label + (" ?" if reading.unsure else ""), "unsure": reading.unsure,
            "error": False, "more": len(reading.digits) > max_digits}


def predictions(entries, total=None, counts=None) -> np.ndarray:
    """The predictions figure as a BGR image: each image beside the 28x28 pictures the
    network saw, with the file name under it and the reading in blue (red when unsure).

    Up to GRID_MAX entries are all shown. For more (pass `total` and `counts`, a dict with
    "read", "unsure" and "errors"), a header gives the counts and at most SUMMARY_TILES
    entries are shown, the unsure readings and errors first. Drawn with OpenCV into one
    array, so it costs milliseconds whatever the folder's size.
    """
    entries = list(entries)
    total = len(entries) if total is None else total
    header = None
    if total > GRID_MAX or len(entries) > GRID_MAX:
        counts = counts or {}
        ranked = sorted(entries, key=lambda e: (not e["error"], not e["unsure"]))
        entries = ranked[:SUMMARY_TILES]
        header = (f"{total} images: {counts.get('read', 0)} read, "
                  f"{counts.get('unsure', 0)} unsure, {counts.get('errors', 0)} errors. "
                  f"Showing {len(entries)}, unsure and errors first.")
    per_row = max(1, min(6, len(entries), int(np.ceil(np.sqrt(max(1, len(entries)) * 1.5)))))
    rows = max(1, -(-len(entries) // per_row))
    top = 40 if header else 0
    canvas = np.full((top + rows * TILE_H, per_row * TILE_W, 3), 255, np.uint8)
    if header:
        _text(canvas, header, (10, 26), 0.55, (0, 0, 0), canvas.shape[1] - 20)
    for k, entry in enumerate(entries):
        row, col = divmod(k, per_row)
        _tile(canvas[top + row * TILE_H: top + (row + 1) * TILE_H,
                     col * TILE_W: (col + 1) * TILE_W], entry)
    return canvas


def _tile(tile: np.ndarray, entry: dict) -> None:
    import cv2

    preview = entry["preview"]
    if preview is not None:
        h, w = preview.shape
        scale = PREVIEW_BOX / max(h, w)
        small = cv2.resize(preview, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
        tile[10:10 + small.shape[0], 10:10 + small.shape[1]] = small[:, :, None]
        cv2.rectangle(tile, (9, 9), (10 + small.shape[1], 10 + small.shape[0]), (200,) * 3, 1)
    x, y = 140, 10
    for k, seen in enumerate(entry["seen"]):
        big = cv2.resize(seen, (56, 56), interpolation=cv2.INTER_NEAREST)
        if x + 56 > TILE_W - 6:
            x, y = 140, y + 60
            if y + 56 > PREVIEW_BOX + 10:
                break
        tile[y:y + 56, x:x + 56] = big[:, :, None]
        x += 58
    colour = (0, 0, 200) if entry["unsure"] else (180, 90, 0)
    _text(tile, entry["label"], (10, TILE_H - 38), 0.8, colour, TILE_W - 20, thickness=2)
    _text(tile, entry["name"], (10, TILE_H - 12), 0.42, (60, 60, 60), TILE_W - 20)


def _text(image, text, origin, scale, colour, max_width, thickness=1) -> None:
    """ASCII text (others become '?'), shortened with '..' to fit `max_width` pixels."""
    import cv2

    text = text.encode("ascii", "replace").decode("ascii")
    font = cv2.FONT_HERSHEY_SIMPLEX
    while len(text) > 3 and cv2.getTextSize(text, font, scale, thickness)[0][0] > max_width:
        text = text[: len(text) // 2 - 1] + ".." + text[len(text) // 2 + 2:]
    cv2.putText(image, text, origin, font, scale, colour, thickness, cv2.LINE_AA)


def save_image(image: np.ndarray, path) -> str:
    """Write a BGR image drawn by `predictions`; the format follows the path's extension."""
    import cv2

    from .files import atomic_write

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1].lower() or ".png"
    ok, buffer = cv2.imencode(suffix, image)
    if not ok:
        raise ValueError(f"{path}: cannot write a {suffix} image")
    atomic_write(path, lambda handle: handle.write(buffer.tobytes()))
    return path


def show_image(image: np.ndarray, title="tinynet") -> bool:
    """Show a BGR image in a window, scaled to fit a screen; False when there is no display."""
    if not _display_available():
        return False
    plt = _pyplot()
    if plt.get_backend().lower() == "agg":
        return False
    h, w = image.shape[:2]
    scale = min(1.0, 900 / h, 1500 / w) / 100
    fig = plt.figure(title, figsize=(w * scale, h * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image[:, :, ::-1])
    ax.axis("off")
    plt.show()
    return True


def training_curves(history, ax_loss, ax_acc):
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    ax_loss.plot(epochs, history.get("loss", []), label="train")
    if history.get("val_loss"):
        ax_loss.plot(epochs, history["val_loss"], label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, history.get("accuracy", []), label="train")
    if history.get("val_accuracy"):
        ax_acc.plot(epochs, history["val_accuracy"], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.legend()


def confusion_matrix(y_true, y_pred, classes=10):
    """Counts: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def evaluation(history, matrix, mistakes):
    """Training curves, confusion matrix and the most confident mistakes in one figure.

    ``mistakes``: list of (image 28x28, true label, predicted label, confidence).
    """
    plt = _pyplot()
    fig = plt.figure(figsize=(14, 8))
    grid = fig.add_gridspec(2, 8)
    training_curves(history or {}, fig.add_subplot(grid[0, 0:3]), fig.add_subplot(grid[0, 3:6]))
    ax = fig.add_subplot(grid[1, 0:3])
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix",
           xticks=range(10), yticks=range(10))
    spots = [grid[r, c] for r in range(2) for c in range(3, 8) if (r, c) not in
             {(0, 3), (0, 4), (0, 5)}][:7]
    for spot, (image, true, pred, conf) in zip(spots, mistakes):
        a = fig.add_subplot(spot)
        a.imshow(image, cmap="gray", vmin=0, vmax=1)
        a.set_title(f"true {true}, said {pred}\n({100 * conf:.0f}%)", fontsize=8)
        a.axis("off")
    fig.tight_layout()
    return fig
