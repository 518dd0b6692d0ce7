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


def predictions(results, per_row=4):
    """A grid of the images read: for each, the original beside the 28x28 picture(s) the
    network saw, titled with the file name and the prediction.

    ``results``: list of dicts with keys ``name``, ``original`` (2-D array in [0, 1]),
    ``seen`` (list of 28x28 arrays, one per digit) and ``text`` (the label to show).
    """
    plt = _pyplot()
    per_row = max(1, min(per_row, len(results)))
    rows = max(1, -(-len(results) // per_row))
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(3.2 * per_row, 1.9 * rows),
                             squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.6})
    for ax in axes.ravel():
        ax.axis("off")
    for k, r in enumerate(results):
        row, col = divmod(k, per_row)
        left, right = axes[row, 2 * col], axes[row, 2 * col + 1]
        left.imshow(r["original"], cmap="gray", vmin=0, vmax=1)
        left.set_title(r["name"], fontsize=7, loc="left")
        # Several digits of a number are shown side by side in one strip.
        strip = np.hstack([np.pad(d, 1, constant_values=0.5) for d in r["seen"]])
        right.imshow(strip, cmap="gray", vmin=0, vmax=1)
        right.set_title(r["text"], fontsize=8, color="tab:blue")
    return fig


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
