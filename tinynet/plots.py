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
    if not history.get("loss"):
        for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.text(0.5, 0.5, "no training history\nin this model file", ha="center",
                    va="center", transform=ax.transAxes, color="gray")
            ax.set(title=name, xticks=[], yticks=[])
        return
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
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def confusion_matrix(y_true, y_pred, classes=10):
    """Counts: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def evaluation(history, matrix, mistakes, per_row=3):
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
    training_curves(history or {}, fig.add_subplot(outer[0, 0]), fig.add_subplot(outer[1, 0]))
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
