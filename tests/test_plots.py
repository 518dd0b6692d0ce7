"""The figures: the evaluation figure is readable, and figure paths are decided up front."""

import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from tinynet import plots  # noqa: E402


def contrast(color_a, color_b):
    """WCAG contrast ratio of two colours."""
    def luminance(rgba):
        channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
                    for c in matplotlib.colors.to_rgba(rgba)[:3]]
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]

    high, low = sorted((luminance(color_a), luminance(color_b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.fixture
def figure():
    rng = np.random.default_rng(0)
    matrix = np.diag([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]) * 1
    matrix[9, 4], matrix[2, 7], matrix[5, 3] = 6, 5, 37
    mistakes = [(rng.random((28, 28)), 9, 4, 0.99 - k / 100) for k in range(12)]
    history = {"loss": [0.5, 0.1, 0.05], "val_loss": [0.1, 0.06, 0.04],
               "accuracy": [0.9, 0.97, 0.99], "val_accuracy": [0.97, 0.98, 0.99]}
    fig = plots.evaluation(history, matrix, mistakes)
    fig.canvas.draw()
    yield fig, matrix
    matplotlib.pyplot.close(fig)


def test_the_evaluation_figure_states_the_overall_accuracy(figure):
    fig, matrix = figure
    right = int(np.trace(matrix))
    assert fig._suptitle.get_text() == (
        f"test accuracy {100 * right / matrix.sum():.2f}%: {right:,} of {matrix.sum():,} "
        f"images right, {matrix.sum() - right:,} wrong")
    assert fig._suptitle.get_text().startswith("test accuracy 99.52%: 10,000 of 10,048")


def confusion_texts(fig):
    ax = next(a for a in fig.axes if a.get_title().startswith("confusion matrix"))
    return ax, [t for t in ax.texts if t.get_text().isdigit()]


def test_every_count_is_readable_and_fits_its_cell(figure):
    fig, matrix = figure
    ax, texts = confusion_texts(fig)
    assert sorted(int(t.get_text()) for t in texts) == sorted(matrix[matrix > 0].tolist())
    image = ax.images[0]
    renderer = fig.canvas.get_renderer()
    for text in texts:
        col, row = text.get_position()
        background = image.cmap(image.norm(image.get_array()[int(row), int(col)]))
        assert contrast(text.get_color(), background) >= 4.5, text.get_text()
        assert text.get_fontsize() >= 8
        box = text.get_window_extent(renderer)
        (x0, y0), (x1, y1) = ax.transData.transform([(col - 0.5, row + 0.5),
                                                     (col + 0.5, row - 0.5)])
        assert x0 <= box.x0 and box.x1 <= x1 and y0 <= box.y0 and box.y1 <= y1, text.get_text()


def test_the_mistakes_sit_together_in_a_compact_grid(figure):
    fig, _ = figure
    boxes = [a.get_position() for a in fig.axes if a.get_title().startswith("true ")]
    assert len(boxes) == 12
    area = sum(b.width * b.height for b in boxes)
    x0, y0 = min(b.x0 for b in boxes), min(b.y0 for b in boxes)
    x1, y1 = max(b.x1 for b in boxes), max(b.y1 for b in boxes)
    assert area / ((x1 - x0) * (y1 - y0)) > 0.5            # images, not empty space
    assert len({round(b.x0, 3) for b in boxes}) == 3         # three columns...
    assert len({round(b.y0, 3) for b in boxes}) == 4         # ...of four rows


def test_an_evaluation_without_history_or_mistakes_still_draws(tmp_path):
    fig = plots.evaluation(None, np.diag([5] * 10), [])
    path = plots.save(fig, tmp_path / "e.png")
    assert os.path.getsize(path) > 10_000
    assert "100.00%" in fig._suptitle.get_text()


@pytest.mark.parametrize("given, expected", [
    ("fig", "fig.png"), ("out/fig.pdf", "out/fig.pdf"), ("fig.SVG", "fig.SVG"),
    ("newdir/", "newdir/predictions.png")])
def test_figure_paths(tmp_path, given, expected):
    assert plots.figure_path(f"{tmp_path}/{given}") == str(tmp_path / expected)


def test_an_existing_folder_gets_the_figure_inside_it(tmp_path):
    assert plots.figure_path(tmp_path) == str(tmp_path / "predictions.png")
    assert plots.figure_path(tmp_path, "evaluation.png") == str(tmp_path / "evaluation.png")


@pytest.mark.parametrize("name, message", [
    ("fig.txt", "fig.txt: cannot save a figure as '.txt'; use one of .png, .jpg, .jpeg, .pdf, "
                ".svg (no extension means .png)"),
    ("a-file/fig.png", "is a file, not a folder"),
])
def test_unusable_figure_paths_are_refused_before_any_work(tmp_path, name, message):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError) as info:
        plots.figure_path(str(tmp_path / name))
    assert message in str(info.value)


def test_saving_writes_the_name_it_reports_and_keeps_the_old_file_on_failure(tmp_path,
                                                                            monkeypatch):
    fig = plots.evaluation(None, np.diag([5] * 10), [])
    assert plots.save(fig, tmp_path / "fig") == str(tmp_path / "fig.png")
    assert os.listdir(tmp_path) == ["fig.png"]
    before = (tmp_path / "fig.png").read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fig, "savefig", full_disk)
    with pytest.raises(OSError) as info:
        plots.save(fig, tmp_path / "fig.png")
    assert info.value.filename == str(tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes() == before
    assert os.listdir(tmp_path) == ["fig.png"]


@pytest.mark.parametrize("ext", [".png", ".pdf", ".svg"])
def test_undecodable_file_name_bytes_are_drawn_as_a_replacement_character(tmp_path, ext):
    name = os.fsdecode(b"digit-\xff\xfe-7.png")             # what os.listdir gives for it
    fig = matplotlib.pyplot.figure()
    fig.add_subplot().set_title(name)
    path = plots.save(fig, tmp_path / f"f{ext}")
    assert os.path.getsize(path) > 1000
    assert fig.axes[0].get_title() == "digit-\ufffd\ufffd-7.png"
    assert plots.display_text("plain é") == "plain é"
