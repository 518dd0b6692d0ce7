"""Matplotlib figures: predictions on custom images, training curves, confusion matrix.

Every function draws on a figure it creates and returns it; ``save`` writes it to a PNG.
Nothing here opens a window, so these work on machines without a display.
"""

import os

import numpy as np

from .files import atomic_write


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


#: Extensions ``save`` writes (matplotlib's own formats; pgf would need LaTeX).
FIGURE_FORMATS = ("png", "jpg", "jpeg", "pdf", "svg", "svgz", "eps", "ps", "tif", "tiff", "webp")


def figure_path(path, default_name="predictions.png"):
    """The file a figure asked for as ``path`` is written to, decided before any work is done.

    An existing folder (or a name ending in '/') gets ``default_name`` inside it; a name
    without an extension gets '.png'; any other extension must be one of ``FIGURE_FORMATS``.
    Raises ``ValueError`` saying what is wrong with ``path``."""
    text = os.fspath(path)
    if not text:
        raise ValueError("the figure's file name is empty")
    if os.path.isdir(text) or text.endswith(("/", os.sep)):
        text = os.path.join(text, default_name)
    root, ext = os.path.splitext(text)
    if not ext:
        text, ext = text + ".png", ".png"
    if ext.lower().lstrip(".") not in FIGURE_FORMATS:
        raise ValueError(f"{path}: cannot save a figure as '{ext}'; use one of "
                         + ", ".join("." + f for f in FIGURE_FORMATS[:5])
                         + " (no extension means .png)")
    folder = os.path.dirname(os.path.abspath(text))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"{path}: cannot save a figure there: {folder} is a file, not a folder")
    return text


def save(fig, path):
    """Write ``fig`` to ``path`` (see ``figure_path``) atomically; return the path written.

    Text drawn in the figure is made printable first: a file name with bytes that are not
    UTF-8 (kept by Python as lone surrogates) cannot be rendered or written to a PDF/SVG."""
    path = figure_path(path)
    for text in fig.findobj(lambda artist: hasattr(artist, "get_text")
                            and hasattr(artist, "set_text")):
        text.set_text(display_text(text.get_text()))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fmt = os.path.splitext(path)[1].lower().lstrip(".")
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=100, bbox_inches="tight"))
    return path


def display_text(text):
    """``text`` with any undecodable bytes of a file name (which Python keeps as lone
    surrogates, U+D800-U+DFFF) shown as U+FFFD, the replacement character."""
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in str(text))


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
    # an image holding no digit shows the glyphs judged not digits, and says so
    glyphs = reading.digits or reading.not_digits
    seen = [np.round(g.image * 255).astype(np.uint8) for g in glyphs[:max_digits]]
    label = reading.text if len(reading.text) <= 18 else reading.text[:16] + ".."
    if not reading.digits:
        label = "not a digit"
    return {"name": reading.name, "preview": reading.preview, "seen": seen,
            "label": label + (" ?" if reading.unsure else ""), "unsure": reading.unsure,
            "error": False, "more": len(glyphs) > max_digits}


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
    for seen in entry["seen"]:
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
    """Write a BGR image drawn by `predictions` to `path` (see `figure_path`) atomically.

    Raster formats are encoded by OpenCV, without loading matplotlib; PDF, SVG and other
    vector formats wrap the image in a matplotlib figure."""
    import cv2

    path = figure_path(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"):
        plt = _pyplot()
        h, w = image.shape[:2]
        fig = plt.figure(figsize=(w / 100, h / 100))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(image[:, :, ::-1])
        ax.axis("off")
        return save(fig, path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
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


def training_curves(history, ax_loss, ax_acc, held_out="test"):
    """Loss and accuracy per epoch, on the training images and on the ``held_out`` ones
    ("test", or "validation" for a recipe that holds training images out)."""
    if not history.get("loss"):
        for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.text(0.5, 0.5, "no training history\nin this model file", ha="center",
                    va="center", transform=ax.transAxes, color="gray")
            ax.set(title=name, xticks=[], yticks=[])
        return
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    ax_loss.plot(epochs, history.get("loss", []), label="train")
    if history.get("val_loss"):
        ax_loss.plot(epochs, history["val_loss"], label=held_out)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, history.get("accuracy", []), label="train")
    if history.get("val_accuracy"):
        ax_acc.plot(epochs, history["val_accuracy"], label=held_out)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def confusion_matrix(y_true, y_pred, classes=10):
    """Counts: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def evaluation(history, matrix, mistakes, per_row=3, held_out="test"):
    """Overall accuracy, training curves, confusion matrix and the most confident mistakes,
    in one figure.

    ``mistakes``: list of (image 28x28, true label, predicted label, confidence), shown in a
    compact grid of ``per_row`` columns.
    """
    plt = _pyplot()
    matrix = np.asarray(matrix)
    total = int(matrix.sum())
    correct = int(np.trace(matrix))
    fig = plt.figure(figsize=(16, 7.5))
    fig.suptitle(f"test accuracy {100 * correct / max(total, 1):.2f}%: {correct:,} of "
                 f"{total:,} images right, {total - correct:,} wrong", fontsize=15,
                 fontweight="bold", y=1.04)
    outer = fig.add_gridspec(2, 3, width_ratios=[1.0, 1.45, 1.15], wspace=0.28, hspace=0.45)
    training_curves(history or {}, fig.add_subplot(outer[0, 0]), fig.add_subplot(outer[1, 0]),
                    held_out)
    confusion_axes(fig.add_subplot(outer[:, 1]), matrix)
    mistakes = list(mistakes)
    if mistakes:
        rows = -(-len(mistakes) // per_row)
        grid = outer[:, 2].subgridspec(max(rows, 4), per_row, wspace=0.1, hspace=0.55)
        for k, (image, true, pred, conf) in enumerate(mistakes):
            a = fig.add_subplot(grid[divmod(k, per_row)])
            a.imshow(image, cmap="gray", vmin=0, vmax=1)
            a.set_title(f"true {true}, said {pred}\n{100 * conf:.0f}% sure", fontsize=8.5)
            a.set_xticks([])
            a.set_yticks([])
            if k == 0:
                a.text(0, 1.45, "most confident mistakes", transform=a.transAxes, fontsize=12,
                       va="bottom")
    return fig


def confusion_axes(ax, matrix):
    """Draw the confusion matrix: log-scaled colours (the diagonal dwarfs the rest), each
    count in a size that fits its cell and a colour that stands out from it."""
    plt = _pyplot()
    classes = matrix.shape[0]
    shade = np.log1p(matrix) / max(np.log1p(matrix.max()), 1e-9)
    cmap = plt.get_cmap("Blues")
    ax.imshow(shade, cmap=cmap, vmin=0, vmax=1)
    digits = len(str(int(matrix.max()))) if matrix.size else 1
    size = 10 if digits <= 4 else 8
    for i in range(classes):
        for j in range(classes):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=size,
                        color=text_color_on(cmap(shade[i, j])))
    ax.set(xlabel="predicted digit", ylabel="true digit", xticks=range(classes),
           yticks=range(classes))
    ax.set_title("confusion matrix (test set)", fontsize=12)


def text_color_on(rgba):
    """Black or white, whichever contrasts more with the background colour ``rgba``."""
    def channel(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgba[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "white"
