"""Read the digits in an image: `tinynet.read` for one image, `tinynet.read_many` for folders.

This is the one path from a user's picture to digits; the command-line recognizer, the
drawing window and the accuracy benchmark all go through it.

    >>> reading = tinynet.read("sheet.jpg")
    >>> reading.text                      # lines joined by "/"
    '123/456'
    >>> reading.lines[0][0].value, reading.lines[0][0].box
    (1, (40, 32, 95, 140))

How an image is read:

1. `imagefile.read_image` turns the file into a grey array (large JPEGs are decoded at a
   reduced size straight away), shrunk to at most `ANALYSIS_SIZE` pixels a side.
2. `vision.find_ink` separates ink from paper, whatever the polarity and the lighting.
3. `layout.find_lines` groups the ink into lines of glyphs and drops what is not writing.
   When the lines slope alike by SKEW_MIN degrees or more (a page photographed turned,
   `_page_skew`), its glyphs are turned straight and grouped again: lines sloping steeply
   run into each other. Boxes are still given in the image's own pixels.
4. Each glyph is rendered MNIST-style (`vision.render_digit`) and read by the network,
   whole and cut in the ways `layout.split_options` proposes. A glyph is read as several
   digits only when the cut reading is clearly more probable than the whole one: the
   product of the pieces' probabilities must beat the whole glyph's by a factor that depends
   on its shape (`split_penalty`: 4 for a glyph of ordinary width, less for a wide one). So
   a wide 0 or a 4 with a long bar stays one digit, while touching digits, each clearly a
   digit on its own, are cut apart.
5. The other way round, a digit drawn in strokes that do not meet (a 5 whose flag floats
   beside it) leaves a glyph and a smaller piece next to it (`layout.join_options`, and
   `Glyph.loose` for pieces too small to read alone). They are read as one digit only when
   the joined glyph's best digit is `JOIN_PENALTY` times as probable as the digits read
   apart (a piece too small to read alone counts as read for sure), so two digits the
   network reads well apart are never joined.

Not a digit. A model with 11 outputs says, besides the 10 digits, how probable it is that a
glyph is not a digit at all (class `NOT_A_DIGIT`: a letter, a symbol, a doodle, a fragment of
a digit); a model with 10 outputs (and no feature distance, below) never rejects anything. A
glyph the network calls `NOT_A_DIGIT` with at least `REJECT_AT` probability, in the reading
the reader settles on, is left out of `Reading.lines` and `.text` and listed in
`Reading.not_digits` instead; an image holding only such glyphs reads as "". A glyph it
calls "not a digit" less surely is read as its most probable digit, with that digit's (low)
probability, so the reading is unsure. In a line where `IN_NUMBER` other glyphs are read as
digits, the bar is `REJECT_IN_NUMBER`: a glyph among digits is most likely one too.

A model with a fitted feature distance (`tinynet/feature_distance.py`) also says whether a
glyph is far from every digit it was trained on, which catches kinds of non-digit the
network's "not a digit" output never saw. A glyph the reader settles on that is far, and not
among `IN_NUMBER` digits, is not a digit, whatever the outputs say. The distance takes no
part in deciding where to cut and join: two touching digits are far from any one digit, and
must still be cut.

How rejection enters the decision to cut: a reading's score is the product, over its glyphs,
of the probability of what each glyph is read as, and

- a glyph read whole scores the probability of its most probable digit, or its "not a digit"
  probability when that reaches `REJECT_AT`: the network's "not a digit" is then a reading
  of the whole glyph like any other;
- a piece of a cut scores its best *digit* probability: a cut is only worth making to find
  digits, so a piece the network calls "not a digit" (a fragment) weighs against the cut.

So a wide 0 whose halves the network calls fragments stays one digit, and a whole glyph that
is not a digit (a letter, say) is cut only when its pieces as digits are more probable than
the whole is as a non-digit (by the same `split_penalty` factor), not merely because its
pieces look a bit more like digits than the whole did. One exception: the network calls two
touching digits, seen together, "not a digit", often more surely than it reads both pieces.
So a glyph as wide as two digits, rejected whole, whose pieces are digit-shaped and read
with 90% probability together, is cut if the cut reading is at least half as probable
(`TOUCHING_BONUS`). With 10 outputs both scores are the best digit probability, as before.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import imagefile, layout, vision
from .errors import ImageError, TinynetError
from .networks import NOT_A_DIGIT
from .plots import display_text

__all__ = ["Digit", "NotADigit", "NOT_A_DIGIT", "Reading", "ReadError", "read", "read_many",
           "rejected", "image_files", "default_model"]

ANALYSIS_SIZE = 1000   # longer side, in pixels, at which the ink is found and laid out
UNSURE_BELOW = 0.6     # a digit read with less probability than this makes a reading unsure
SKEW_MIN, SKEW_MAX = 5.0, 30.0   # lines sloping this much (degrees): the page is turned
MAX_DIGITS_PER_GLYPH = 4
WIDE = 1.2             # glyphs this wide for their height are always tried cut as well
SURE = 0.98            # narrower glyphs are tried cut only when read whole with less than this
PREVIEW_SIZE = 160     # longer side of the grey preview kept with each reading
# read_many lays out this many images, or images of this many analysis pixels in all (so a
# folder of photos, up to 1000x1000 each with their soft ink and labels, stays small in
# memory), then runs the network once on all their glyphs: on 1,000 small files the
# network's batches run 17% faster at 128 images than at 32.
BATCH_IMAGES = 128
BATCH_PIXELS = 1 << 23
# A glyph is not a digit when the network says so with at least this probability. Chosen on
# a tuning split of generated images (pen-style MNIST test digits 5000-5799 and 400 non-digits,
# seed 1; the benchmarks use seed 0): the lowest of 0.5, 0.8, 0.9, 0.95 and 0.98 that
# rejected at most 0.2% of the digits (0.12%, against 1.25% at 0.5), at the cost of answering
# "not a digit" for 54% of the non-digits instead of 74%.
REJECT_AT = 0.9
# A glyph in a line where at least IN_NUMBER other glyphs are read as digits is part of a
# number far more often than not, so there "not a digit" must be surer: REJECT_IN_NUMBER.
# The shipped model calls some clean pen-drawn digits "not a digit" (its negatives are drawn
# with an even pen; MNIST's digits never are), and in a number that loses the whole reading.
# Chosen on 300 pages made from the 5,000 held-out *training* digits (seed 1), with the
# cost measured on the 1,000 held-out generated non-digits (the share a number would still
# leave out):  0.9: pages 89.0%, non-digits 77.1%;  0.97: 91.3%, 64.5%;  0.99: 91.7%, 49.5%;
# 0.999: 92.0%, 23.1%. 0.97 takes most of the gain for the smallest loss.
REJECT_IN_NUMBER = 0.97
IN_NUMBER = 2

#: A glyph as wide as two digits (`_wide`) that the network calls "not a digit" whole, but
#: whose pieces it reads as digits with 90% probability together (`TOUCHING_SURE`), each
#: piece no wider than tall (as 96% of MNIST's digits are; the loops of an infinity sign
#: are wider), is most likely two touching digits (the network has seldom seen two digits
#: as one image): that cut needs only half the probability of the "not a digit" reading.
TOUCHING_BONUS = math.log(2.0)
TOUCHING_SURE = math.log(0.9)

#: How many times more probable than the separate glyphs' digits a joined glyph's best digit
#: must be for the reader to join them (see step 5 of the module's docstring).
JOIN_PENALTY = math.log(2.0)

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "weights" / "mnist.npz"
_default_model = None


@dataclass
class Digit:
    """One digit read: its value, the network's 10 probabilities, where it is, what was seen.

    `box` is (x0, y0, x1, y1) in pixels of the source image (x1, y1 exclusive); `image` is the
    28x28 float32 picture (white on black, MNIST-style) that the network read.
    `probabilities` holds the 10 digit probabilities, shape (10,), as the network gives them:
    for an 11-output model they sum to 1 - `not_digit`, the probability of `NOT_A_DIGIT`
    (0.0 for a 10-output model).
    """

    value: int
    probabilities: np.ndarray
    box: tuple[int, int, int, int]
    image: np.ndarray
    not_digit: float = 0.0

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.value])


@dataclass
class NotADigit:
    """A glyph judged not a digit, left out of the reading's text: how probable the network
    says that is (only an 11-output model can), where it is, what was seen, which digit it
    would have been read as if it had to be one, and whether the model's feature distance
    found it `far` from every digit it learnt. `box` and `image` as in `Digit`."""

    probability: float
    box: tuple[int, int, int, int]
    image: np.ndarray
    best_digit: int
    best_digit_probability: float
    far: bool = False

    @property
    def confidence(self) -> float:
        """How sure the reader is: the network's probability, or 1.0 for a far glyph (the
        distance test decided, whatever the network's outputs say)."""
        return 1.0 if self.far else self.probability


@dataclass
class Reading:
    """What was read in one image: lines of digits, top to bottom, each left to right, and
    the glyphs judged not a digit, in the same order (empty for a 10-output model).

    `lines` is empty, and `text` "", when every glyph in the image is not a digit."""

    lines: list[list[Digit]]
    source: str = ""                  # the file's path, or "" for an array
    size: tuple[int, int] = (0, 0)    # the source image's (width, height)
    preview: np.ndarray | None = field(default=None, repr=False)  # small grey copy, uint8
    not_digits: list[NotADigit] = field(default_factory=list)

    ok = True

    @property
    def digits(self) -> list[Digit]:
        return [d for line in self.lines for d in line]

    @property
    def text(self) -> str:
        """The lines joined by "/": "7", "2025", "123/456"."""
        return "/".join("".join(str(d.value) for d in line) for line in self.lines)

    @property
    def confidence(self) -> float:
        """The probability of the least sure digit; for a reading without digits, how sure
        it is that there is none: the "not a digit" probability of the least sure glyph."""
        if self.digits:
            return min(d.confidence for d in self.digits)
        return min((n.confidence for n in self.not_digits), default=0.0)

    @property
    def unsure(self) -> bool:
        """Some digit, or some glyph left out as not a digit, was judged with less than
        `UNSURE_BELOW` probability (a barely rejected glyph may be a digit missing from
        the text)."""
        least = min((n.confidence for n in self.not_digits), default=1.0)
        return min(self.confidence, least) < UNSURE_BELOW

    @property
    def name(self) -> str:
        return display_name(self.source) if self.source else "<array>"


@dataclass
class ReadError:
    """An image that could not be read: which file, and why (one line, without the path)."""

    source: str
    reason: str

    ok = False

    @property
    def name(self) -> str:
        """The file's name; the whole path for a folder."""
        path = Path(self.source)
        if path.is_dir():
            return display_text(path)
        return display_name(self.source)

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


# --------------------------------------------------------------------------------------------
# The public functions
# --------------------------------------------------------------------------------------------

def default_model():
    """The shipped `weights/mnist.npz`, loaded on first use and kept."""
    global _default_model
    if _default_model is None:
        from .model import load

        _default_model = load(SHIPPED_MODEL)
    return _default_model


def read(source, model=None) -> Reading:
    """Read the digits in one image: a file path, or a 2-D/3-D array of any polarity and size.

    Arrays are 2-D grey or 3-D with 1-4 channels last (OpenCV's B, G, R, A order), of any
    integer, bool or float type (see `imagefile.to_gray`). `model` maps (N, 28, 28) images to
    (N, 10) probabilities through `predict`, or (N, 11) with `NOT_A_DIGIT` last (see the
    module's docstring); None uses the shipped model.

    Raises ImageError naming the file when it cannot be read, and "no digit found" when the
    image holds no writing. Writing that is all "not a digit" is a Reading with text "".
    """
    page = _Page.open(source)
    readings = _read_pages([page], model or default_model())
    if isinstance(readings[0], ImageError):
        raise readings[0]
    return readings[0]


def read_many(sources, model=None) -> Iterator[Reading | ReadError]:
    """Read every image in `sources` (paths of files and folders), yielding as it goes.

    Folders are expanded into their image files in natural order (digit2.png before
    digit10.png), not recursively; files are read in the order given. One result per file:
    a `Reading`, or a `ReadError` naming the file and the reason, so that one bad image never
    stops the others. Files in a folder that look like images in a format that cannot be read
    (HEIC, SVG, ...) give a ReadError too; other files (notes, CSVs) are skipped. Memory stays
    bounded however many images there are: images are read in small batches and nothing is
    kept once yielded.
    """
    model = model or default_model()
    batch: list[_Page] = []
    for item in image_files(sources):
        if isinstance(item, ReadError):
            yield from _flush(batch, model)
            batch = []
            yield item
            continue
        try:
            batch.append(_Page.open(item))
        except ImageError as exc:
            yield from _flush(batch, model)
            batch = []
            yield ReadError(str(item), _reason(exc, item))
            continue
        except Exception as exc:    # a bug, but one image must not stop the others
            yield from _flush(batch, model)
            batch = []
            yield ReadError(str(item), f"unexpected {type(exc).__name__}: {exc} "
                                       "(please report this)")
            continue
        if len(batch) == BATCH_IMAGES or _pixels(batch) >= BATCH_PIXELS:
            yield from _flush(batch, model)
            batch = []
    yield from _flush(batch, model)


def image_files(sources) -> Iterator[Path | ReadError]:
    """The image files named by `sources` (paths or folders), in reading order.

    A folder yields its files whose suffix is a readable image format (`imagefile.FORMATS`)
    or whose first bytes are one, in natural order; files of known unreadable image formats
    yield a ReadError saying so; a folder with no image at all, or a path that does not exist,
    yields a ReadError. Files named directly are yielded as they are (reading them reports
    what is wrong).
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    for source in sources:
        path = Path(source)
        if not path.is_dir():
            if not path.exists() and not path.is_symlink():
                yield ReadError(str(path), "no such file or folder")
            else:
                yield path
            continue
        try:
            entries = sorted(path.iterdir(), key=natural_key)
        except OSError as exc:
            yield ReadError(str(path), f"cannot list folder ({exc.strerror})")
            continue
        found = 0
        for entry in entries:
            kind = _folder_entry_kind(entry)
            if kind == "image":
                found += 1
                yield entry
            elif kind is not None:
                found += 1
                yield ReadError(str(entry), f"{kind} images cannot be read; convert it to "
                                            "PNG or JPEG")
        if not found:
            yield ReadError(str(path), "no images in this folder")


def display_name(path) -> str:
    """A file's name, printable anywhere: bytes that are not valid UTF-8 become U+FFFD."""
    return display_text(Path(path).name or str(path))


def natural_key(path) -> list:
    """Sort key putting digit2.png before digit10.png."""
    name = Path(path).name
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower())
            for t in re.split(r"(\d+)", name) if t]


def _folder_entry_kind(entry: Path) -> str | None:
    """"image", the name of an unreadable image format, or None for files to skip."""
    if entry.name.startswith(".") or entry.is_dir():
        return None
    suffix = entry.suffix.lower()
    if suffix in imagefile.IMAGE_SUFFIXES:
        return "image"
    if suffix in imagefile.UNREADABLE_SUFFIXES:
        return imagefile.UNREADABLE_SUFFIXES[suffix]
    if suffix and len(suffix) <= 5 and suffix[1:].isalpha() and suffix not in _IMAGE_SNIFF:
        return None           # notes.txt, labels.csv: named as something else
    try:
        with open(entry, "rb") as handle:
            head = handle.read(32)
    except OSError:
        return None
    return "image" if imagefile.sniff_format(head) else None


# suffixes that say nothing about the content, so the first bytes are checked
_IMAGE_SNIFF = {".img", ".image", ".tmp", ".dat", ".bin", ".pic", ".photo"}


def _pixels(batch: list[_Page]) -> int:
    """Analysis pixels the pages of a batch hold (a page with no ink holds none)."""
    return sum(page.soft.size for page in batch if page.soft is not None)


def _reason(exc: Exception, path) -> str:
    """An error message on one line, without the path it starts with."""
    text = " ".join(str(exc).split())
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


# --------------------------------------------------------------------------------------------
# Reading pages
# --------------------------------------------------------------------------------------------

@dataclass
class _Page:
    """One image laid out: its soft ink, label image and lines of glyphs, before the network."""

    source: str
    size: tuple[int, int]
    scale: float                    # source pixels per analysis pixel
    soft: np.ndarray
    labels: np.ndarray
    lines: list
    preview: np.ndarray
    error: ImageError | None = None
    back: np.ndarray | None = None  # laid out turned straight: the 2x3 map back, else None

    @classmethod
    def open(cls, source) -> _Page:
        if isinstance(source, (str, os.PathLike)):
            gray, size = imagefile.read_image(source, min_side=ANALYSIS_SIZE)
            name = str(source)
        else:
            gray = imagefile.to_gray(source)
            size, name = (gray.shape[1], gray.shape[0]), ""
        small = vision.shrink(gray, ANALYSIS_SIZE)
        preview = np.round(vision.shrink(small, PREVIEW_SIZE) * 255).astype(np.uint8)
        scale = size[0] / small.shape[1]
        try:
            soft, mask = vision.find_ink(small)
            lines, labels = _lines(mask, soft)
            back = None
            skew = _page_skew(lines)
            if skew:        # lines sloping steeply are grouped badly: lay them out straight
                soft, mask = _glyphs_only(soft, labels, lines)
                soft, back = vision.turn(soft, skew)
                mask, _ = vision.turn(mask, skew, cv2.INTER_NEAREST)
                lines, labels = _lines(mask, soft)
        except ImageError as exc:
            error = ImageError(f"{name}: {exc}" if name else str(exc))
            return cls(name, size, scale, None, None, [], preview, error)
        return cls(name, size, scale, soft, labels, lines, preview, back=back)


def _lines(mask: np.ndarray, soft: np.ndarray) -> tuple[list, np.ndarray]:
    """`layout.find_lines`, or "no digit found" when it finds no line."""
    lines, labels = layout.find_lines(mask, soft)
    if not lines:
        raise ImageError("no digit found (only specks, lines or frames)")
    return lines, labels


def _page_skew(lines) -> float:
    """The median slope of a page's lines (those `_line_slope` can measure) when it is
    SKEW_MIN to SKEW_MAX degrees: the page was photographed turned; else 0."""
    slopes = [a for a in map(_line_slope, lines) if a is not None]
    angle = float(np.median(slopes)) if slopes else 0.0
    return angle if SKEW_MIN <= abs(angle) <= SKEW_MAX else 0.0


def _glyphs_only(soft: np.ndarray, labels: np.ndarray, lines: list
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(soft ink, mask) of the glyphs of `lines` alone: what layout found not to be writing
    (rules, frames, page edges, specks) stays out when the page is laid out again."""
    kept = [b.label for line in lines for glyph in line
            for part in (glyph, *glyph.loose) for b in part.blobs]
    mask = np.isin(labels, kept).astype(np.uint8)
    return soft * cv2.dilate(mask, np.ones((3, 3), np.uint8)), mask


class _Node:
    """A glyph (or a piece of one) rendered for the network, with the ways to cut it."""

    __slots__ = ("page", "glyph", "image", "pieces_left", "digit_width", "options", "probs",
                 "far")

    def __init__(self, page, glyph, image, pieces_left, digit_width):
        self.page, self.glyph, self.image, self.pieces_left = page, glyph, image, pieces_left
        self.digit_width = digit_width      # the typical width of a glyph in its line, if known
        self.options, self.probs, self.far = [], None, False


def _node(page: _Page, glyph, pieces_left: int, digit_width: float | None) -> _Node | None:
    ink = glyph.ink(page.soft, page.labels)
    if ink.size == 0 or ink.max() <= 0.05:
        return None
    return _Node(page, glyph, vision.render_digit(ink), pieces_left, digit_width)


def _line_slope(line) -> float | None:
    """How many degrees a line slopes (clockwise, as the image shows it), fitted through its
    glyphs' centres; None for a line too short to tell (under three glyphs, or spanning
    less than twice their height)."""
    if len(line) < 3:
        return None
    x = np.array([(g.box[0] + g.box[2]) / 2 for g in line])
    y = np.array([(g.box[1] + g.box[3]) / 2 for g in line])
    if np.ptp(x) < 2 * np.median([g.height for g in line]):
        return None
    return float(np.degrees(np.arctan(np.polyfit(x, y, 1)[0])))


def _digit_width(line) -> float | None:
    """The median width of a line's glyphs, when it has enough of them to tell."""
    return float(np.median([g.width for g in line])) if len(line) >= 3 else None


def _worth_cutting(node: _Node) -> bool:
    """Should the network see this glyph cut? Wide glyphs and glyphs of several blobs always;
    glyphs of ordinary width only when the network is not sure of them whole (as a digit or
    as not a digit: a cut must beat the whole's probability, see `_best`, which two
    pieces can hardly do against a glyph that is SURE not to be a digit)."""
    glyph = node.glyph
    if node.pieces_left < 2 or glyph.height < 4:
        return False
    aspect = glyph.width / glyph.height
    several = sum(b.area >= 0.15 * glyph.area for b in glyph.blobs) >= 2
    return several or _wide(node) or (aspect >= layout.SPLIT_ASPECT
                                      and float(node.probs.max()) < SURE)


def _digit_shaped(*nodes: _Node) -> bool:
    """Is each glyph no wider than tall, as nearly every digit is?"""
    return all(n.glyph.width <= n.glyph.height for n in nodes)


def _wide(node: _Node) -> bool:
    """Is the glyph as wide as two digits: WIDE for its height, or 1.4 times its line's
    typical glyph?"""
    glyph = node.glyph
    return glyph.width >= WIDE * glyph.height or (node.digit_width is not None
                                                   and glyph.width >= 1.4 * node.digit_width)


def _expand(node: _Node) -> list[_Node]:
    """Render the cuts of a node; return the new nodes (for the next round of the network)."""
    new = []
    page = node.page
    for left, right in layout.split_options(node.glyph, page.soft, page.labels):
        a = _node(page, left, node.pieces_left - 1, node.digit_width)
        b = _node(page, right, node.pieces_left - 1, node.digit_width)
        if a is not None and b is not None:
            node.options.append((a, b))
            new += [a, b]
    return new


#: (aspect, penalty) points of `split_penalty`, linear in between and flat beyond the ends.
SPLIT_PENALTY = ((0.7, math.log(4.0)), (1.3, 0.0))
#: (width / typical width in the line, penalty) points, used when the line has 3+ glyphs.
SPLIT_PENALTY_IN_LINE = ((1.2, math.log(4.0)), (1.8, 0.0))


def split_penalty(glyph, digit_width: float | None = None) -> float:
    """How much less likely (in log-odds) a glyph is to be two digits than one, from its shape.

    MNIST's digits are rarely wider than tall (4% of them are 1.2 times as wide as tall, 0.5%
    1.5 times) while two digits side by side usually are (half of all pairs are over 1.5
    times). So a cut reading of a glyph up to 0.7 times as wide as tall must be 4 times as
    probable as the whole reading, and the factor falls to 1 at 1.3 times. (Tried on MNIST
    *training* digits and pages made from them: letting the factor fall below 1 for very wide
    glyphs cut more single digits in two and read fewer pages right, because the network is
    often confident about half a digit.)

    With `digit_width`, the typical width of the glyphs in the glyph's line, a glyph much
    wider than its neighbours is also likely to be two digits (`SPLIT_PENALTY_IN_LINE`).
    """
    aspect = glyph.width / max(1, glyph.height)
    xs, ys = zip(*SPLIT_PENALTY)
    penalty = float(np.interp(aspect, xs, ys))
    if digit_width:     # in a line of digits, a glyph as wide as two of them is likely two
        xs, ys = zip(*SPLIT_PENALTY_IN_LINE)
        penalty = min(penalty, float(np.interp(glyph.width / digit_width, xs, ys)))
    return penalty


class _Line:
    """A line's glyphs as network nodes: each glyph read alone (and cut), and the joins that
    `layout` proposes, each read whole."""

    def __init__(self, page: _Page, glyphs: list):
        width = _digit_width(glyphs)
        self.roots = [_node(page, g, MAX_DIGITS_PER_GLYPH, width) for g in glyphs]
        # glyph i with its loose pieces, and glyphs i and i + 1 as one
        self.with_loose = {i: _node(page, g.joined(*g.loose), 1, width)
                           for i, g in enumerate(glyphs) if g.loose}
        self.pairs = {i: _node(page, glyphs[i].joined(glyphs[i + 1]), 1, width)
                      for i in layout.join_options(glyphs)}

    def nodes(self) -> list[_Node]:
        joins = list(self.with_loose.values()) + list(self.pairs.values())
        return [n for n in self.roots + joins if n is not None]

    def decide(self) -> list[_Node]:
        """The nodes read as the line's glyphs, in order: joins where they win, else each
        glyph's best reading (`_best`)."""
        units: list[list[_Node] | None] = [_best(root)[1] if root is not None else []
                                           for root in self.roots]
        for i, joined in self.with_loose.items():
            if _joins(joined, [self.roots[i]]):
                units[i] = [joined]
        for i, joined in sorted(self.pairs.items()):
            taken = units[i] is None or i in self.with_loose or i + 1 in self.with_loose
            if not taken and _joins(joined, [self.roots[i], self.roots[i + 1]]):
                units[i], units[i + 1] = [joined], None
        return [node for unit in units if unit is not None for node in unit]


def _joins(joined: _Node | None, parts: list[_Node | None]) -> bool:
    """Should `parts` (glyphs side by side; None for one with no ink) be read as the one
    glyph `joined`? Only if it is a digit, `JOIN_PENALTY` times as probable as the parts
    read as digits (each whole or cut, whichever is more probable)."""
    if joined is None or _rejects(joined.probs):
        return False
    apart = sum(_best(part, piece=True)[0] for part in parts if part is not None)
    together = math.log(max(float(joined.probs[:NOT_A_DIGIT].max()), 1e-12))
    return together - JOIN_PENALTY > apart


def _best(node: _Node, piece: bool = False) -> tuple[float, list[_Node]]:
    """(log-probability, glyphs) of the most probable reading of a node, cuts included.

    Read whole, a glyph scores the probability of its most probable class, "not a digit"
    included; a `piece` of a cut scores its best digit probability only, since cutting is
    worth it only to find digits (see the module's docstring)."""
    rejected_whole = not piece and _rejects(node.probs)
    whole = node.probs[NOT_A_DIGIT] if rejected_whole else 0.0
    best = (math.log(max(float(node.probs[:NOT_A_DIGIT].max()), whole, 1e-12)), [node])
    penalty = split_penalty(node.glyph, node.digit_width)
    touching = rejected_whole and _wide(node)
    for a, b in node.options:
        score_a, digits_a = _best(a, piece=True)
        score_b, digits_b = _best(b, piece=True)
        score = score_a + score_b - penalty
        if touching and score_a + score_b >= TOUCHING_SURE and _digit_shaped(a, b):
            score += TOUCHING_BONUS
        if score > best[0]:
            best = (score, digits_a + digits_b)
    return best


def _read_pages(pages: list[_Page], model) -> list[Reading | ImageError]:
    """Lay out the pages' glyphs, run the network over them in rounds, then decide.

    Round one reads every glyph whole; each later round reads the cuts of the glyphs that
    are worth cutting (see `_worth_cutting`), all pages together, so the network runs a few
    times per batch of pages instead of once per glyph.
    """
    trees: list[list | None] = []
    frontier: list[_Node] = []
    for page in pages:
        if page.error is not None:
            trees.append(None)
            continue
        tree = [_Line(page, line) for line in page.lines]
        trees.append(tree)
        frontier += [n for line in tree for n in line.nodes()]
    while frontier:
        probs, far = predict(model, np.stack([n.image for n in frontier]))
        for node, p, f in zip(frontier, probs, far):
            node.probs, node.far = p, bool(f)
        frontier = [new for node in frontier if _worth_cutting(node) for new in _expand(node)]
    results: list[Reading | ImageError] = []
    for page, tree in zip(pages, trees):
        if tree is None:
            results.append(page.error)
            continue
        lines, not_digits = [], []
        for line in tree:
            chosen = line.decide()
            alone = [_rejects(node.probs) or node.far for node in chosen]
            read_as_digits = alone.count(False)
            digits = []
            for node, rejected_alone in zip(chosen, alone):
                others = read_as_digits - (not rejected_alone)
                in_number = others >= IN_NUMBER
                if _rejects(node.probs, in_number) or (node.far and not in_number):
                    not_digits.append(_not_a_digit(node, page.scale))
                else:
                    digits.append(_digit(node, page.scale))
            if digits:
                lines.append(digits)
        if not lines and not not_digits:
            results.append(ImageError(f"{page.source}: no digit found" if page.source
                                      else "no digit found"))
            continue
        results.append(Reading(lines, page.source, page.size, page.preview, not_digits))
    return results


def predict(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the reader asks a model about glyph images ((N, 28, 28) or (N, 1, 28, 28)): its
    (N, 10) or (N, 11) probabilities, and which of them its feature distance finds far from
    every digit (none, for a model without one). `rejected(probs) | far` is the reader's
    "not a digit" for glyphs read alone."""
    if getattr(model, "feature_distance", None) is not None:
        probs, distances = model.predict(images, distance=True)
    else:
        probs, distances = model.predict(images), np.zeros(len(images))
    probs = np.asarray(probs)
    if probs.ndim != 2 or len(probs) != len(images) or probs.shape[1] not in (10, 11):
        raise ValueError(f"the model gave probabilities of shape {probs.shape} for "
                         f"{len(images)} images; a digit reader gives (N, 10), or (N, 11) "
                         "with 'not a digit' last")
    return probs, _far(distances)


def _far(distances) -> np.ndarray:
    """Relative feature distances (`model.predict(x, distance=True)`) above 1: far."""
    return np.asarray(distances) > 1.0


def _source_box(node: _Node, scale: float) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = node.glyph.box
    if node.page.back is not None:       # laid out turned: the box around its corners
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64)
        xs, ys = (corners @ node.page.back.T).T
        x0, y0, x1, y1 = max(0.0, xs.min()), max(0.0, ys.min()), xs.max(), ys.max()
    width, height = node.page.size
    return (int(x0 * scale), int(y0 * scale), min(width, int(math.ceil(x1 * scale))),
            min(height, int(math.ceil(y1 * scale))))


def _digit(node: _Node, scale: float) -> Digit:
    digits = node.probs[:NOT_A_DIGIT].astype(np.float32)
    return Digit(int(digits.argmax()), digits, _source_box(node, scale), node.image,
                 _not_digit(node.probs))


def _not_a_digit(node: _Node, scale: float) -> NotADigit:
    best = int(node.probs[:NOT_A_DIGIT].argmax())
    return NotADigit(_not_digit(node.probs), _source_box(node, scale), node.image, best,
                     float(node.probs[best]), node.far)


def rejected(probabilities, at: float | None = None, distances=None) -> np.ndarray:
    """Which rows of (N, 10) or (N, 11) probabilities the reader calls "not a digit": those
    giving `NOT_A_DIGIT` at least `at` (default `REJECT_AT`; none for a 10-output model),
    and, given the model's relative feature `distances` (`model.predict(x, distance=True)`), those
    above 1: the rule for a glyph read alone. (N,) bools."""
    probabilities = np.asarray(probabilities)
    far = (np.zeros(probabilities.shape[:-1], dtype=bool) if distances is None
           else _far(distances))
    if probabilities.shape[-1] <= NOT_A_DIGIT:
        return far
    return (probabilities[..., NOT_A_DIGIT] >= (REJECT_AT if at is None else at)) | far


def _rejects(probs: np.ndarray, in_number: bool = False) -> bool:
    """Is this glyph (one row of probabilities) not a digit? Among digits (`in_number`) it
    takes more to say so: see `REJECT_IN_NUMBER`."""
    return bool(rejected(probs, REJECT_IN_NUMBER if in_number else REJECT_AT))


def _not_digit(probs: np.ndarray) -> float:
    """The probability of `NOT_A_DIGIT` in a row of 10 or 11 probabilities (0.0 for 10)."""
    return float(probs[NOT_A_DIGIT]) if len(probs) > NOT_A_DIGIT else 0.0


def _flush(batch: list[_Page], model) -> Iterable[Reading | ReadError]:
    if not batch:
        return []
    try:
        results = _read_pages(batch, model)
    except Exception:   # a bug: read the pages one at a time so only the culprit fails
        if len(batch) == 1:
            raise
        return [r for page in batch for r in _flush([page], model)]
    out = []
    for page, result in zip(batch, results):
        if isinstance(result, TinynetError):
            out.append(ReadError(page.source, _reason(result, page.source)))
        else:
            out.append(result)
    return out
