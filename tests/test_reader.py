"""Tests for tinynet.read / read_many and the layout beneath them, on constructed pages.

The pages are drawn here with the pen-stroke digits of examples/make_digits.py (the project's
own), so these tests need no data set; those that read digits use the shipped model.
"""

import inspect
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import tinynet
from tinynet import imagefile, layout, plots, reader, vision
from tinynet.errors import ImageError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import make_digits  # noqa: E402

SHIPPED = ROOT / "weights" / "mnist.npz"
needs_model = pytest.mark.skipif(not SHIPPED.exists(), reason="weights/mnist.npz missing")


def write(canvas, strokes_and_boxes, pen=5):
    for strokes, box in strokes_and_boxes:
        make_digits.draw_strokes(canvas, strokes, box, pen, 255)


#: A cross, in the unit box of make_digits' skeletons: not a digit.
CROSS = [make_digits.line((0.1, 0.1), (0.9, 0.9)), make_digits.line((0.9, 0.1), (0.1, 0.9))]


def page(lines, height=60, gap=0.35, slope=0.0, seed=0, size=None, pen=5):
    """A dark-on-white page: `lines` is a list of strings of digits, drawn top to bottom;
    an "x" in a line is drawn as a cross (`CROSS`), something that is not a digit.

    Digits of a line step right by (1 + gap) digit widths and down by `slope` x width.
    """
    rng = np.random.default_rng(seed)
    width = int(height * 0.7)
    longest = max(len(line) for line in lines)
    rows = size or (int(height * 1.8 * len(lines) + height), int(width * (1 + gap) * longest
                                                                    + 2 * width))
    canvas = np.zeros(rows, np.uint8)
    for k, line in enumerate(lines):
        top = height // 2 + int(k * height * 1.8)
        for i, d in enumerate(line):
            x = width // 2 + i * width * (1 + gap)
            y = top + slope * i * width
            strokes = CROSS if d == "x" else make_digits.jitter(make_digits.SKELETONS[int(d)],
                                                                rng, wobble=0.004)
            write(canvas, [(strokes, (x, y, width, height))], pen)
    return 255 - canvas


# -- the public API ---------------------------------------------------------------------------

@needs_model
def test_read_two_lines_in_reading_order():
    reading = tinynet.read(page(["123", "456"]))
    assert reading.text == "123/456"
    assert [[d.value for d in line] for line in reading.lines] == [[1, 2, 3], [4, 5, 6]]
    first, last = reading.lines[0][0], reading.lines[1][-1]
    assert first.box[0] < last.box[0] and first.box[1] < last.box[1]
    assert first.image.shape == (28, 28) and first.probabilities.shape == (10,)
    # the 10 digit probabilities and the 11th output, "not a digit", make up the whole
    assert abs(float(first.probabilities.sum()) + first.not_digit - 1) < 1e-4
    assert reading.confidence == min(d.confidence for d in reading.digits)
    assert not reading.unsure


@needs_model
def test_read_a_single_digit_is_its_value():
    reading = tinynet.read(page(["7"]))
    assert reading.text == "7" and len(reading.lines) == 1


@needs_model
def test_read_slanted_lines_of_different_heights():
    top = page(["2025"], height=70, slope=0.08)
    bottom = page(["314"], height=45, seed=1)
    sheet = np.full((top.shape[0] + bottom.shape[0], max(top.shape[1], bottom.shape[1])), 255,
                    np.uint8)
    sheet[:top.shape[0], :top.shape[1]] = top
    sheet[top.shape[0]:, :bottom.shape[1]] = bottom
    assert tinynet.read(sheet).text == "2025/314"


@needs_model
def test_ruled_lines_frames_and_specks_are_not_ink():
    sheet = page(["47", "85"], height=60)
    for y in range(20, sheet.shape[0], 54):             # ruled paper, touching the digits
        sheet[y:y + 2, :] = 150
    sheet[:, 6:8] = 120                                  # a margin line along the edge
    rng = np.random.default_rng(3)
    for y, x in rng.integers(0, sheet.shape, (30, 2)):  # dust
        sheet[y, x] = 0
    assert tinynet.read(sheet).text == "47/85"
    framed = cv2.copyMakeBorder(page(["6"]), 30, 30, 30, 30, cv2.BORDER_CONSTANT, value=255)
    cv2.rectangle(framed, (10, 10), (framed.shape[1] - 11, framed.shape[0] - 11), 0, 2)
    assert tinynet.read(framed).text == "6"


def turned(sheet, degrees):
    """The sheet turned about its centre, as a page photographed askew."""
    turn = cv2.getRotationMatrix2D((sheet.shape[1] / 2, sheet.shape[0] / 2), degrees, 1)
    return cv2.warpAffine(sheet, turn, sheet.shape[::-1], borderValue=255)


@needs_model
@pytest.mark.parametrize("degrees", [-3.5, 2.0])
def test_digits_on_the_lines_of_ruled_paper_photographed_askew(degrees):
    sheet = page(["2025", "314"], pen=3)
    for y in range(36, sheet.shape[0], 54):             # every other line under the digits
        sheet[y:y + 2, :] = np.minimum(sheet[y:y + 2, :], 120)
    assert tinynet.read(turned(sheet, degrees)).text == "2025/314"


@needs_model
def test_the_cut_end_of_a_rule_beside_a_number_is_not_read():
    """On a page photographed askew a rule near the edge leaves the image before crossing
    it, so it is no rule across the page; much taller than the writing and thin, it is
    still no digit (and must not make the digits beside it look small)."""
    sheet = cv2.copyMakeBorder(page(["2025"]), 60, 60, 0, 40, cv2.BORDER_CONSTANT, value=255)
    height, width = sheet.shape
    cv2.line(sheet, (width - 30, 4), (width - 18, int(0.8 * height)), 0, 2)
    assert tinynet.read(sheet).text == "2025"


def test_a_line_s_slope_is_measured_through_its_glyphs():
    def line(angle, count=4, height=40):
        step = np.tan(np.radians(angle)) * 50
        return [layout.Glyph([layout.Blob(k + 1, 600, 50 * k, int(100 + step * k),
                                          50 * k + 30, int(100 + step * k) + height)])
                for k in range(count)]
    assert reader._line_slope(line(12)) == pytest.approx(12, abs=0.5)
    assert reader._line_slope(line(-20)) == pytest.approx(-20, abs=0.5)
    assert reader._line_slope(line(12, count=2)) is None       # two glyphs tell too little


def test_an_image_turned_keeps_all_of_it_and_maps_back():
    ink = np.zeros((40, 20), np.float32)
    ink[5:35, 9:12] = 1.0                                     # an upright bar
    bar, back = vision.turn(ink, 30.0)
    assert bar.shape[0] > 40 and bar.shape[1] > 20
    assert bar.sum() == pytest.approx(ink.sum(), rel=0.02)
    ys, xs = np.nonzero(bar > 0.5)
    assert np.polyfit(ys, xs, 1)[0] == pytest.approx(np.tan(np.radians(30)), abs=0.1)  # top left
    again = cv2.warpAffine(bar, back, (20, 40))               # and back where it was
    assert np.abs(again - ink).mean() < 0.05


@needs_model
def test_digits_of_a_line_sloping_steeply_are_read_upright():
    sheet = cv2.copyMakeBorder(page(["4711"], pen=4), 60, 60, 20, 20, cv2.BORDER_CONSTANT,
                               value=255)
    assert tinynet.read(turned(sheet, 25)).text == "4711"


def test_rules_turned_a_little_are_found_at_their_angle():
    for degrees in (-4.0, 1.5, 3.0):
        mask = np.zeros((300, 400), np.uint8)
        for y in range(-40, 340, 40):
            cv2.line(mask, (-50, y), (450, y), 1, 1)
        mask = (turned(255 * (1 - mask), degrees) < 128).astype(np.uint8)
        blobs = layout.components(mask)[0]
        assert layout._rules_turn(mask, blobs) == pytest.approx(-degrees, abs=0.2)
        cleaned = layout.remove_rules(mask, blobs)
        assert cleaned is not None and cleaned.sum() < 0.02 * mask.sum()
    straight = np.zeros((300, 400), np.uint8)
    straight[::40] = 1
    assert layout._rules_turn(straight, layout.components(straight)[0]) == 0.0


@pytest.mark.parametrize("size, pen, degrees", [((100, 60), 7, 0.0), ((100, 60), 7, 4.0),
                                                ((44, 38), 3, 5.0)])
def test_a_long_straight_stroke_filling_its_image_is_not_a_rule(size, pen, degrees):
    """A 1 drawn from top to bottom of a small image, upright or slanted like a rule on a
    page askew: turned straight, its core is a long thin run, but its ink is thick."""
    mask = np.zeros(size, np.uint8)
    cv2.line(mask, (size[1] // 2, 4), (size[1] // 2, size[0] - 5), 1, pen)
    mask = (turned(255 * (1 - mask), degrees) < 128).astype(np.uint8)
    soft = mask.astype(np.float32)
    assert layout.remove_rules(mask, layout.components(mask)[0], soft) is None


def test_a_faint_rule_is_removed_where_it_crosses_the_threshold():
    """A printed rule in the mask only where the light is lower: found whole in the soft
    ink, and that part removed, however short."""
    soft = np.zeros((120, 300), np.float32)
    soft[60:62, :] = 0.3                                 # the rule, under the threshold ...
    soft[60:62, 240:] = 0.6                              # ... but for its last 60 px
    soft[30:90, 100:106] = 1.0                           # a stroke of a digit
    mask = (soft > 0.5).astype(np.uint8)
    blobs = layout.components(mask)[0]
    assert layout.remove_rules(mask, blobs) is None      # 60 px: no rule to the mask alone
    kept = layout.remove_rules(mask, blobs, soft)
    assert not kept[59:63, 240:].any()
    assert kept[30:90, 100:106].all()                    # the stroke crossing it stays whole


def test_a_stroke_lying_on_a_fainter_rule_is_kept():
    mask = np.zeros((100, 200), np.uint8)
    soft = np.zeros((100, 200), np.float32)
    mask[50:52, :], soft[50:52, :] = 1, 0.45             # a rule across the image
    mask[48:54, 80:120], soft[48:54, 80:120] = 1, 1.0    # a pen stroke along it, darker
    mask[20:50, 80:84], soft[20:50, 80:84] = 1, 1.0      # ... rising from its left end
    blobs = layout.components(mask)[0]
    kept = layout.remove_rules(mask, blobs, soft)
    assert kept[50:52, 80:120].all() and kept[48:54, 80:120].all()
    assert not kept[50:52, :70].any() and not kept[50:52, 130:].any()
    # geometry alone cannot tell the stroke from the rule where they overlap
    assert not layout.remove_rules(mask, blobs)[50:52, 90:110].any()
    # nor can the ink when the rule is as dark as the pen
    soft[50:52, :] = 0.9
    assert not layout.remove_rules(mask, blobs, soft)[50:52, 90:110].any()


@needs_model
def test_touching_digits_are_cut_and_wide_digits_are_not():
    assert tinynet.read(page(["00"], gap=-0.1)).text == "00"
    assert tinynet.read(page(["509"], gap=-0.08)).text == "509"
    wide_zero = np.full((120, 200), 255, np.uint8)              # 1.4 times as wide as tall
    cv2.ellipse(wide_zero, (100, 60), (63, 45), 0, 0, 360, 0, 7)
    assert tinynet.read(wide_zero).text == "0"


@needs_model
def test_a_five_with_a_detached_flag_stays_one_digit():
    canvas = np.zeros((140, 120), np.uint8)
    cv2.line(canvas, (45, 25), (95, 25), 255, 7)                   # the flag, not touching
    cv2.line(canvas, (42, 36), (38, 68), 255, 7)
    cv2.ellipse(canvas, (60, 90), (28, 26), 0, -140, 140, 255, 7)
    assert tinynet.read(255 - canvas).text == "5"


@needs_model
def test_a_five_whose_flag_floats_beside_its_top_is_joined_by_the_network():
    canvas = np.zeros((140, 130), np.uint8)
    cv2.line(canvas, (62, 30), (105, 26), 255, 7)                  # the flag, right of the stem
    cv2.line(canvas, (42, 24), (38, 68), 255, 7)
    cv2.ellipse(canvas, (60, 90), (28, 26), 0, -140, 140, 255, 7)
    reading = tinynet.read(255 - canvas)
    assert reading.text == "5"
    assert reading.digits[0].box[2] >= 100                          # the flag is part of it


def glyph(x0, y0, x1, y1, label=1):
    return layout.Glyph([layout.Blob(label, (x1 - x0) * (y1 - y0), x0, y0, x1, y1)])


def test_a_small_piece_beside_the_top_of_a_glyph_is_kept_loose_on_it():
    body, flag = glyph(0, 0, 30, 60), glyph(34, 2, 50, 10, label=2)
    dot = glyph(34, 50, 40, 58, label=3)                            # level with the bottom
    far = glyph(120, 2, 130, 10, label=4)
    line = layout.drop_small_glyphs([body, flag, dot, far])
    assert line == [body] and body.loose == [flag]


def test_the_halves_of_a_slanted_eight_drawn_apart_join_but_two_lines_do_not():
    top, bottom = layout.Blob(1, 500, 22, 0, 66, 40), layout.Blob(2, 900, 0, 36, 37, 102)
    units = layout.join_stacked([top, bottom])
    assert [sorted(b.label for b in u) for u in units] == [[1, 2]]
    # a digit of the next line, as much offset but 40% of its height below: two units
    lower = layout.Blob(2, 900, 0, 80, 37, 146)
    assert len(layout.join_stacked([top, layout.Blob(3, 900, 22, 0, 60, 66), lower])) == 3


def test_join_options_pair_a_short_piece_with_its_neighbour_but_not_two_digits():
    body, piece = glyph(0, 0, 30, 60), glyph(33, 0, 55, 25, label=2)
    other = glyph(80, 0, 110, 60, label=3)                          # 25 px: too far
    assert layout.join_options([body, piece, other]) == [0]
    assert layout.join_options([body, other]) == []                 # as tall: two digits


def test_glyphs_are_joined_only_when_the_network_reads_them_far_better_as_one():
    def node(*probs):
        n = reader._Node(None, glyph(0, 0, 10, 10), None, 1, None)
        n.probs = np.array(probs + (0.0,) * (11 - len(probs)), np.float32)
        return n
    unsure, sure = node(0.3, 0.3, 0.4), node(0.99, 0.01)
    assert reader._joins(node(0.0, 0.0, 0.0, 0.0, 0.0, 0.99), [unsure])
    assert reader._joins(node(0.0, 0.0, 0.0, 0.0, 0.0, 0.99), [unsure, unsure])
    assert not reader._joins(node(0.0, 0.0, 0.0, 0.0, 0.0, 0.99), [sure])
    assert not reader._joins(node(0.0, 0.0, 0.0, 0.0, 0.0, 0.99), [sure, node(0.1, 0.9)])
    # a 1 and an unsure bar beside it, read together as a 4 drawn in two strokes
    assert reader._joins(node(0.0, 0.0, 0.0, 0.0, 0.99), [sure, unsure])
    rejected = node(*(0.0,) * 10, 0.99)                            # not a digit, joined
    assert not reader._joins(rejected, [unsure])


def test_a_wide_glyph_called_not_a_digit_is_cut_when_its_digit_shaped_pieces_are_sure():
    def node(box, probs, pieces_left=2):
        n = reader._Node(None, glyph(*box), None, pieces_left, None)
        n.probs = np.array(probs, np.float32)
        return n
    zero = [0.995] + [0.0] * 9 + [0.005]
    rejected = [0.0] * 10 + [0.9999]
    # two touching 0s, each as tall as wide or narrower: the cut wins though the whole's
    # "not a digit" (0.9999) is more probable than the two 0s together (0.99)
    pair = node((0, 0, 150, 100), rejected)
    pair.options = [(node((0, 0, 75, 100), zero, 1), node((75, 0, 150, 100), zero, 1))]
    assert reader._best(pair)[1] == list(pair.options[0])
    # an infinity sign: its loops are wider than tall, so it stays one glyph, not a digit
    sign = node((0, 0, 200, 90), rejected)
    sign.options = [(node((0, 0, 100, 90), zero, 1), node((100, 0, 200, 90), zero, 1))]
    assert reader._best(sign)[1] == [sign]


def test_split_penalty_falls_with_width():
    narrow = layout.Glyph([layout.Blob(1, 100, 0, 0, 20, 40)])
    square = layout.Glyph([layout.Blob(1, 100, 0, 0, 44, 40)])
    wide = layout.Glyph([layout.Blob(1, 100, 0, 0, 80, 40)])
    assert reader.split_penalty(narrow) == pytest.approx(reader.SPLIT_PENALTY[0][1])
    assert reader.split_penalty(narrow) > reader.split_penalty(square) > 0
    assert reader.split_penalty(wide) == 0


def test_blank_and_noise_only_images_say_no_digit_found():
    with pytest.raises(ImageError, match="no digit found"):
        tinynet.read(np.full((80, 80), 255, np.uint8), model=Uniform())
    ruled = np.full((200, 300), 255, np.uint8)
    ruled[50::50, :] = 0
    with pytest.raises(ImageError, match="no digit found"):
        tinynet.read(ruled, model=Uniform())


class Uniform:
    def __init__(self):
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        return np.full((len(images), 10), 0.1, np.float32)


# -- read_many ----------------------------------------------------------------------------

def test_read_many_streams_results_as_it_goes(tmp_path):
    first = tmp_path / "a.png"
    cv2.imwrite(str(first), page(["1"]))
    later = tmp_path / "b.png"                      # does not exist yet
    results = tinynet.read_many([first, later], model=Uniform())
    assert inspect.isgenerator(results)
    # the second file is only looked at after the first result was taken
    cv2.imwrite(str(later), page(["2"]))
    got = list(results)
    assert [r.ok for r in got] == [True, True]


def test_read_many_natural_order_errors_and_formats(tmp_path):
    for name in ("digit10.png", "digit2.png", "digit1.pgm"):
        ok, buffer = cv2.imencode(Path(name).suffix, page(["3"]))
        (tmp_path / name).write_bytes(buffer.tobytes())
    ok, buffer = cv2.imencode(".png", page(["4"]))
    (tmp_path / "scan.dat").write_bytes(buffer.tobytes())          # an image under another name
    (tmp_path / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "notes.txt").write_text("labels")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    results = list(tinynet.read_many([tmp_path], model=Uniform()))
    names = [r.name for r in results]
    assert names == ["broken.jpg", "digit1.pgm", "digit2.png", "digit10.png", "photo.heic",
                     "scan.dat"]
    errors = {r.name: r.reason for r in results if not r.ok}
    assert set(errors) == {"broken.jpg", "photo.heic"}
    assert "truncated JPEG" in errors["broken.jpg"]
    assert "HEIC images cannot be read" in errors["photo.heic"]


def test_read_many_reads_in_batches(tmp_path):
    for i in range(reader.BATCH_IMAGES + 3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), page(["1"]))
    model = Uniform()
    assert sum(r.ok for r in tinynet.read_many(tmp_path, model)) == reader.BATCH_IMAGES + 3
    assert model.calls == 2                           # one network run per batch, not per image


def test_read_many_goes_on_past_an_image_with_no_ink(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((60, 60), 255, np.uint8))     # blank
    cv2.imwrite(str(tmp_path / "b.png"), page(["1"]))
    blank, one = tinynet.read_many(tmp_path, Uniform())
    assert not blank.ok and "no digit found" in blank.reason
    assert one.ok


def test_read_many_batches_large_images_by_their_pixels(tmp_path, monkeypatch):
    side = page(["1"]).shape
    monkeypatch.setattr(reader, "BATCH_PIXELS", 3 * side[0] * side[1])
    for i in range(7):
        cv2.imwrite(str(tmp_path / f"{i}.png"), page(["1"]))
    model = Uniform()
    assert sum(r.ok for r in tinynet.read_many(tmp_path, model)) == 7
    assert model.calls == 3                           # 3 + 3 + 1 images


def test_readable_suffixes_come_from_the_formats_list():
    assert imagefile.IMAGE_SUFFIXES == {s for v in imagefile.FORMATS.values() for s in v}
    assert {".pgm", ".ppm", ".pbm", ".jfif"} <= imagefile.IMAGE_SUFFIXES
    assert not set(imagefile.UNREADABLE_SUFFIXES) & imagefile.IMAGE_SUFFIXES


@pytest.mark.parametrize("suffix", [".pgm", ".ppm", ".pbm"])
def test_netpbm_files_are_read(tmp_path, suffix):
    image = page(["8"])
    if suffix == ".ppm":
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    path = tmp_path / f"eight{suffix}"
    assert cv2.imwrite(str(path), image)
    gray = imagefile.load_image(path)
    assert gray.shape == page(["8"]).shape
    assert abs(float(gray.mean()) - float(page(["8"]).mean()) / 255) < 0.02


def test_jpeg_with_data_after_its_end_is_read(tmp_path):
    ok, buffer = cv2.imencode(".jpg", page(["2"]))
    path = tmp_path / "phone.jpg"
    path.write_bytes(buffer.tobytes() + b"\xff\xd8MPF second picture and depth map" * 50)
    assert imagefile.load_image(path).shape == page(["2"]).shape


def test_a_non_utf8_file_name_is_printable(tmp_path):
    path = os.path.join(os.fsencode(tmp_path), b"digit-\xff.png")
    with open(path, "wb") as handle:
        handle.write(cv2.imencode(".png", page(["1"]))[1].tobytes())
    (reading,) = tinynet.read_many([tmp_path], model=Uniform())
    assert reading.name == "digit-\ufffd.png"
    reading.name.encode("utf-8")                      # printable: no surrogates left


# -- the predictions figure ---------------------------------------------------------------

def entries(count, unsure_every=7):
    thumb = np.full((40, 30), 200, np.uint8)
    seen = [np.zeros((28, 28), np.uint8)]
    return [{"name": f"image_{i}.png", "preview": thumb, "seen": seen, "label": str(i % 10),
             "unsure": i % unsure_every == 0, "error": False} for i in range(count)]


@pytest.mark.parametrize("count", [1, 50, 5000])
def test_figure_stays_small_and_quick_at_any_size(count):
    start = time.perf_counter()
    counts = {"read": count, "unsure": count // 7 + 1, "errors": 0}
    image = plots.predictions(entries(count), count, counts)
    assert time.perf_counter() - start < 1.0
    tiles = min(count, plots.GRID_MAX if count <= plots.GRID_MAX else plots.SUMMARY_TILES)
    per_row = image.shape[1] // plots.TILE_W
    assert image.dtype == np.uint8 and image.shape[2] == 3
    assert image.shape[0] <= plots.TILE_H * (-(-tiles // per_row)) + 40
    if count > plots.GRID_MAX:          # a summary: header text drawn in the top band
        assert (image[:40] < 128).any()


def test_figure_writes_the_format_of_its_extension(tmp_path):
    image = plots.predictions(entries(3))
    for name in ("fig.png", "fig.jpg"):
        path = plots.save_image(image, tmp_path / name)
        assert imagefile.sniff_format(Path(path).read_bytes()[:16]) == \
            ("PNG" if name.endswith("png") else "JPEG")


@needs_model
def test_a_sheet_photographed_on_a_dark_table():
    sheet = page(["2025", "314"])
    h, w = sheet.shape
    table = np.full((h + 120, w + 160), 60, np.uint8)
    table[60:60 + h, 80:80 + w] = sheet
    turn = cv2.getRotationMatrix2D((table.shape[1] / 2, table.shape[0] / 2), 8, 1)
    photo = cv2.warpAffine(table, turn, table.shape[::-1], borderValue=60)
    assert tinynet.read(photo).text == "2025/314"


@needs_model
def test_a_short_number_on_a_whole_scanned_page():
    """A4 at 300 dpi with one number 5 mm tall: its ink is under 0.1% of the page once
    shrunk for reading, which must not make the page look blank (or its ink light)."""
    for text, height in (("2025", 60), ("7", 40)):
        scan = np.full((3508, 2480), 250, np.uint8)
        number = page([text], height=height, pen=4)
        scan[1200:1200 + number.shape[0], 900:900 + number.shape[1]] = number
        assert tinynet.read(scan).text == text


@needs_model
def test_a_blank_scanned_page_with_noise_and_dust_is_still_blank():
    rng = np.random.default_rng(0)
    scan = np.clip(250 + rng.normal(0, 4, (3508, 2480)), 0, 255).astype(np.uint8)
    scan[1000:1003, 1000:1003] = 100                         # two specks of dust
    scan[2000:2002, 500:502] = 120
    with pytest.raises(tinynet.ImageError, match="no digit found"):
        tinynet.read(scan)


@needs_model
def test_digits_on_squared_paper_stay_whole():
    sheet = page(["2025", "314"])
    sheet[::22, :] = np.minimum(sheet[::22, :], 110)
    sheet[1::22, :] = np.minimum(sheet[1::22, :], 110)
    sheet[:, ::22] = np.minimum(sheet[:, ::22], 110)
    sheet[:, 1::22] = np.minimum(sheet[:, 1::22], 110)
    assert tinynet.read(sheet).text == "2025/314"


def table_of_numbers(rows, height=50, row_gap=0.25, seed=1):
    """Rows of digits in aligned columns, a quarter of a digit apart, dark on white."""
    rng = np.random.default_rng(seed)
    width = int(height * 0.7)
    canvas = np.zeros((int(len(rows) * height * (1 + row_gap) + height),
                       int(width * 1.4 * len(rows[0]) + 2 * width)), np.uint8)
    for k, row in enumerate(rows):
        for i, d in enumerate(row):
            strokes = make_digits.jitter(make_digits.SKELETONS[int(d)], rng, wobble=0.004)
            box = (width // 2 + i * width * 1.4, height // 2 + k * height * (1 + row_gap),
                   width, height)
            write(canvas, [(strokes, box)])
    return 255 - canvas


@needs_model
def test_a_table_with_close_rows_keeps_its_rows_apart():
    assert tinynet.read(table_of_numbers(["1234", "5678", "9012"])).text == "1234/5678/9012"


@needs_model
def test_digits_written_in_form_boxes():
    canvas = np.zeros((120, 420), np.uint8)
    rng = np.random.default_rng(2)
    for i, d in enumerate("40721"):
        x = 20 + i * 76
        cv2.rectangle(canvas, (x, 15), (x + 70, 105), 255, 2)
        strokes = make_digits.jitter(make_digits.SKELETONS[int(d)], rng, wobble=0.004)
        write(canvas, [(strokes, (x + 18, 28, 36, 66))])
    assert tinynet.read(255 - canvas).text == "40721"


@needs_model
def test_a_faint_number_beside_a_bold_one_is_read():
    bold = page(["500"], pen=8)
    faint = page(["363"], pen=2, seed=4)
    faint = (255 - (255 - faint.astype(np.float32)) * 0.35).astype(np.uint8)   # light pencil
    sheet = np.full((bold.shape[0] + faint.shape[0], max(bold.shape[1], faint.shape[1])), 255,
                    np.uint8)
    sheet[:bold.shape[0], :bold.shape[1]] = bold
    sheet[bold.shape[0]:, :faint.shape[1]] = faint
    assert tinynet.read(sheet).text == "500/363"


# -- not a digit: models with an 11th output ------------------------------------------------

def shipped_digits(images):
    """The shipped model's 10 digit probabilities, (N, 10) (renormalised, so that this stays
    true should the shipped model itself get an 11th output)."""
    probs = reader.default_model().predict(images)[:, :10]
    return probs / probs.sum(axis=1, keepdims=True)


class NotADigitWhen:
    """An 11-output model: the shipped model's digits, and class 10, "not a digit", with
    probability `sure` for the 28x28 images `rule` picks (1% for the others)."""

    def __init__(self, rule, sure=0.95):
        self.rule, self.sure = rule, sure

    def predict(self, images):
        rejected = np.array([self.sure if self.rule(image) else 0.01 for image in images])
        digits = shipped_digits(images) * (1 - rejected)[:, None]
        return np.column_stack([digits, rejected]).astype(np.float32)


def crossed(image):
    """Ink near all four corners of the 28x28: a cross (`CROSS`). No digit drawn here has
    it (a 2, with its top arc and its base, comes closest at 0.4)."""
    return min(image[r:r + 7, c:c + 7].max() for r in (3, 18) for c in (3, 18)) > 0.6


class TenOutputs:
    """The shipped model's digits alone: a 10-output model, which cannot reject."""

    def predict(self, images):
        return shipped_digits(images).astype(np.float32)


class FarWhen:
    """An 11-output model with a fitted feature distance: the shipped model's digits, "not a
    digit" at 1% only (the network never rejects), and the 28x28 images `rule` picks far
    from every digit (relative distance 2; the others 0.5)."""

    feature_distance = "fitted"          # the reader only asks whether there is one

    def __init__(self, rule):
        self.rule = rule

    def predict(self, images, distance=False):
        probs = NotADigitWhen(lambda image: False).predict(images)
        if not distance:
            return probs
        return probs, np.array([2.0 if self.rule(image) else 0.5 for image in images])


def eleven(given):
    """11 probabilities: those `given` ({class: probability}), the rest shared evenly."""
    probs = np.full(11, (1 - sum(given.values())) / (11 - len(given)), np.float32)
    for k, p in given.items():
        probs[k] = p
    return probs


class Staged:
    """An 11-output model giving every glyph read whole (the reader's first round of the
    network) the probabilities `whole`, and every piece of a cut (later rounds) `pieces`."""

    def __init__(self, whole, pieces):
        self.whole, self.pieces, self.calls = eleven(whole), eleven(pieces), 0

    def predict(self, images):
        self.calls += 1
        return np.tile(self.whole if self.calls == 1 else self.pieces, (len(images), 1))


def wide_ellipse():
    """A glyph 1.4 times as wide as tall: always tried cut, and with no penalty for cutting
    (`split_penalty` is 0), so only the network's probabilities decide."""
    image = np.full((120, 200), 255, np.uint8)
    cv2.ellipse(image, (100, 60), (63, 45), 0, 0, 360, 0, 7)
    return image


NOT = reader.NOT_A_DIGIT


@needs_model
def test_an_image_of_something_that_is_not_a_digit_reads_as_no_text():
    reading = tinynet.read(page(["x"]), NotADigitWhen(crossed))
    assert reading.text == "" and reading.lines == [] and reading.digits == []
    (glyph,) = reading.not_digits
    assert isinstance(glyph, tinynet.NotADigit)
    assert glyph.probability == pytest.approx(0.95)
    assert 0 <= glyph.best_digit <= 9 and glyph.best_digit_probability <= 0.05
    assert glyph.image.shape == (28, 28) and crossed(glyph.image)
    x0, y0, x1, y1 = glyph.box
    assert 0 <= x0 < x1 <= reading.size[0] and 0 <= y0 < y1 <= reading.size[1]
    assert reading.confidence == pytest.approx(0.95) and not reading.unsure


@needs_model
def test_a_glyph_that_is_not_a_digit_is_left_out_of_the_number():
    reading = tinynet.read(page(["4x7"]), NotADigitWhen(crossed, sure=0.99))
    assert reading.text == "47"
    (glyph,) = reading.not_digits
    four, seven = reading.digits
    assert four.box[2] <= glyph.box[0] and glyph.box[2] <= seven.box[0]    # between them
    for digit in (four, seven):
        assert digit.probabilities.shape == (10,)
        assert digit.not_digit == pytest.approx(0.01)
        assert float(digit.probabilities.sum()) == pytest.approx(0.99, abs=1e-4)
        assert digit.confidence == float(digit.probabilities[digit.value])


@needs_model
def test_among_digits_not_a_digit_must_be_surer():
    # 0.95 rejects a glyph alone (REJECT_AT 0.9), and one beside a single digit, but not one
    # with two digits in its line (REJECT_IN_NUMBER 0.97): that one is read, unsure.
    model = NotADigitWhen(crossed, sure=0.95)
    assert tinynet.read(page(["x"]), model).text == ""
    assert tinynet.read(page(["4x"]), model).text == "4"
    among = tinynet.read(page(["4x7"]), model)
    assert len(among.text) == 3 and among.text[0] + among.text[2] == "47"
    assert among.not_digits == [] and among.unsure
    assert among.digits[1].not_digit == pytest.approx(0.95)
    assert tinynet.read(page(["4x7"]), NotADigitWhen(crossed, sure=0.98)).text == "47"


@needs_model
def test_a_glyph_far_from_every_digit_is_not_a_digit_whatever_the_network_says():
    assert tinynet.read(page(["x"]), FarWhen(lambda image: False)).text != ""
    reading = tinynet.read(page(["x"]), FarWhen(crossed))
    assert reading.text == ""
    (glyph,) = reading.not_digits
    assert glyph.far and glyph.probability == pytest.approx(0.01)   # the network's own
    assert glyph.confidence == 1.0 and reading.confidence == 1.0 and not reading.unsure
    assert tinynet.read(page(["4x"]), FarWhen(crossed)).text == "4"


@needs_model
def test_a_far_glyph_among_digits_is_read_as_a_digit():
    # as with the network's own "not a digit" (REJECT_IN_NUMBER), a glyph with two digits
    # in its line is most likely one too: touching digits and odd hands are far from any
    # single digit the network learnt
    among = tinynet.read(page(["4x7"]), FarWhen(crossed))
    assert len(among.text) == 3 and among.text[0] + among.text[2] == "47"
    assert among.not_digits == []


@needs_model
def test_a_model_with_10_outputs_never_rejects():
    reading = tinynet.read(page(["4x7"]), TenOutputs())
    assert reading.not_digits == []
    assert reading.text[0] == "4" and reading.text[-1] == "7" and len(reading.text) >= 3
    assert all(d.not_digit == 0.0 for d in reading.digits)


@needs_model
def test_when_nothing_is_a_digit_every_glyph_is_listed_in_reading_order():
    reading = tinynet.read(page(["12", "3"]), NotADigitWhen(lambda image: True, sure=0.95))
    assert reading.text == "" and len(reading.not_digits) == 3
    tops = [g.box[1] for g in reading.not_digits]
    assert tops[2] > max(tops[:2])                                   # the second line last
    assert reading.not_digits[0].box[0] < reading.not_digits[1].box[0]
    assert [g.best_digit for g in reading.not_digits] == [1, 2, 3]   # what they would be
    assert reading.confidence == pytest.approx(0.95) and not reading.unsure


@needs_model
def test_a_glyph_called_not_a_digit_less_surely_than_reject_at_is_read_as_a_digit_unsure():
    assert reader.REJECT_AT == 0.9
    reading = tinynet.read(page(["4x7"]), NotADigitWhen(crossed, sure=0.55))
    assert reading.not_digits == [] and len(reading.text) == 3
    assert reading.text[0] == "4" and reading.text[2] == "7"
    # the cross is read as its best digit, with at most 45% probability: unsure
    assert reading.lines[0][1].not_digit == pytest.approx(0.55)
    assert reading.confidence <= 0.45 and reading.unsure


def test_cutting_a_digit_into_fragments_the_network_rejects_is_penalised():
    # pieces read as digits: the cut wins, as with a 10-output model
    assert tinynet.read(wide_ellipse(), Staged({0: 0.6}, {1: 0.95})).text == "11"
    # pieces read as "not a digit" (fragments) score their best digit probability, 0.01,
    # not the 0.9 of what they are read as (which would cut: 0.9 * 0.9 > 0.6)
    reading = tinynet.read(wide_ellipse(), Staged({0: 0.6}, {NOT: 0.9}))
    assert reading.text == "0" and reading.not_digits == []


def test_a_glyph_that_is_not_a_digit_is_not_cut_into_digit_like_pieces():
    # whole, 90% not a digit (5% a 0); cut, two pieces 80% a 1: more digit-like than the
    # whole (0.64 > 0.05) but less probable than the whole being no digit (0.64 < 0.92)
    reading = tinynet.read(wide_ellipse(), Staged({NOT: 0.92, 0: 0.05}, {1: 0.8}))
    assert reading.text == ""
    (glyph,) = reading.not_digits
    assert glyph.probability == pytest.approx(0.92) and glyph.best_digit == 0
    assert glyph.box[2] - glyph.box[0] > 120                     # the whole ellipse
    # touching digits the network rejects together are still cut when each is surer
    assert tinynet.read(wide_ellipse(), Staged({NOT: 0.6}, {1: 0.9})).text == "11"


def test_a_blank_image_is_still_no_digit_found_for_an_11_output_model():
    with pytest.raises(ImageError, match="no digit found"):
        tinynet.read(np.full((80, 80), 255, np.uint8), model=Staged({NOT: 0.95}, {NOT: 0.95}))


def test_read_many_gives_a_reading_not_an_error_for_an_image_of_no_digit(tmp_path):
    cv2.imwrite(str(tmp_path / "cross.png"), page(["x"]))
    (result,) = tinynet.read_many([tmp_path], Staged({NOT: 0.95}, {NOT: 0.95}))
    assert result.ok and result.text == "" and len(result.not_digits) == 1


def test_a_model_with_another_number_of_outputs_is_refused():
    class Twelve:
        def predict(self, images):
            return np.full((len(images), 12), 1 / 12, np.float32)

    with pytest.raises(ValueError, match=r"shape \(1, 12\)"):
        tinynet.read(page(["7"]), Twelve())


def test_the_figure_labels_an_image_of_no_digit_not_a_digit(monkeypatch):
    reading = tinynet.read(page(["x"]), Staged({NOT: 0.95}, {NOT: 0.95}))
    entry = plots.prediction_entry(reading)
    assert entry["label"] == "not a digit" and not entry["unsure"]
    assert len(entry["seen"]) == 1 and entry["seen"][0].shape == (28, 28)
    monkeypatch.setattr(reader, "REJECT_AT", 0.5)      # a reader that rejects unsure glyphs
    unsure = plots.prediction_entry(tinynet.read(page(["x"]), Staged({NOT: 0.5}, {NOT: 0.5})))
    assert unsure["label"] == "not a digit ?" and unsure["unsure"]
