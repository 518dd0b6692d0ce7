"""Where the digits are: ink blobs -> glyphs -> lines, in reading order. Geometry only, but
for telling rules from writing, where the soft ink's darkness helps.

`find_lines` takes the binary ink mask of an image (and its soft ink; see `vision.find_ink`)
and returns its lines of glyphs, top to bottom, each left to right. A *glyph* is ink that is
at least one digit: usually exactly one, but two or three digits written so close that they
touch are one glyph too. Whether a glyph is one digit or several is not decided here:
`split_options` proposes ways to cut it, and `tinynet.read` lets the network judge them.

The steps, each a small function below:

1. **Blobs**: 8-connected components of the mask.
2. **Not ink**: ruled lines and underlines (straight strokes much longer than the writing is
   tall, also on a page photographed a few degrees askew), pieces of rules (thin, and twice
   as long as the writing is tall), page edges (long thin blobs along the border), frames (a
   thin outline around other ink) and specks (tiny next to the largest blob) are removed;
   writing that lies along a fainter rule stays.
3. **Stacked pieces**: a digit broken across its middle (an 8 drawn in two strokes) leaves two
   blobs one above the other, almost touching; they are joined before lines are formed.
4. **Lines**: blobs taken left to right join the line whose nearest blobs they overlap most in
   height, so a line may slope a little and lines may differ in height.
5. **Glyphs**: within a line, blobs that overlap strongly left to right (a broken stroke, the
   detached flag of a 5) are one glyph. Glyphs much smaller than the line's digits (dots,
   dashes, dust) and lines much smaller than the page's largest (noise) are dropped; a small
   glyph beside the top of a digit is kept on it (`Glyph.loose`), and `join_options` names
   neighbours that may be one digit, for the reader to try joined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from . import vision

__all__ = ["Blob", "Glyph", "find_lines", "join_options", "split_options"]

SPECK_AREA = 0.015      # blobs under this fraction of the largest blob's area are dust
RULE_LENGTH = 2.5       # a straight stroke this many times the writing's height is a rule
RULE_THICKNESS = 0.25   # ... if it is at most this fraction of the writing's height thick
RULE_CONTRAST = 0.25    # writing this much darker than a rule is kept where it lies on it
RULE_TURN = 6.0         # rules turned up to this many degrees (a page photographed askew)
RULE_FAINT = 0.12       # rules are looked for in the soft ink above this (the writing is 1)
RULE_PIECE = 2.0        # a blob this many times as long as the writing is tall ...
RULE_PIECE_WIDTH = 0.15  # ... and at most this fraction of its length wide is part of a rule
FRAME_FILL = 0.15       # an outline filling less of its box than this, around ink, is a frame
STACK_GAP = 0.12        # pieces one above the other this close (of their joint height) join
STACK_OVERLAP = 0.3     # ... when they overlap left to right by this much of the narrower one
PIECE_GAP = 0.3         # ... and a small piece (the flag of a 5) this close to a larger one
STACK_HEIGHT = 1.4      # joined pieces are at most this many times the writing's height ...
CUT_GAP = 0.08          # ... unless the gap is a mere cut (of the shorter piece's height)
SMALL_GLYPH = 0.5       # glyphs shorter than this fraction of the line's tallest are dropped
SLIVER_WIDTH = 0.25     # a glyph this narrow for its height, short and close, is a sliver
SMALL_LINE = 0.35       # lines shorter than this fraction of the tallest line are noise ...
SMALL_LINE_AREA = 0.15  # ... when their ink is also under this fraction of the largest line's
SPLIT_ASPECT = 0.5      # glyphs at least this wide (of their height) may be cut in columns
PIECE_WIDTH = 0.12      # a cut leaves at least this fraction of the height on either side
PIECE_HEIGHT = 0.5      # ... and pieces at least this fraction of the glyph's height tall
JOIN_HEIGHT = 0.7       # neighbours may be one digit if one is under this fraction of the
JOIN_ASPECT = 1.2       # ... other's height, and together at most this wide for their height


@dataclass
class Blob:
    """One connected component of ink: its label in the label image and its box."""

    label: int
    area: int
    x0: int
    y0: int
    x1: int
    y1: int
    border: bool = False

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


@dataclass
class Glyph:
    """Ink that is one or more digits: some blobs, optionally limited to columns [c0, c1)."""

    blobs: list[Blob]
    c0: int = -1
    c1: int = 1 << 30
    box: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))   # x0, y0, x1, y1
    # small glyphs beside this one that may be part of it (the flag of a 5): not read on their
    # own, but offered to the reader joined to this glyph (see `joined`)
    loose: list[Glyph] = field(default_factory=list, compare=False)
    _ink: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.box == (0, 0, 0, 0):
            self.box = (max(min(b.x0 for b in self.blobs), self.c0),
                        min(b.y0 for b in self.blobs),
                        min(max(b.x1 for b in self.blobs), self.c1),
                        max(b.y1 for b in self.blobs))

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> int:
        return sum(b.area for b in self.blobs)

    def joined(self, *others: Glyph) -> Glyph:
        """This glyph and `others` as one glyph (whole blobs; none may be a cut piece)."""
        return Glyph(self.blobs + [b for other in others for b in other.blobs])

    def ink(self, soft: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """This glyph's soft ink, cropped to its box (other ink in the box is blanked).

        A glyph belongs to one page, so the crop is made once: rendering the glyph and
        looking for where to cut it both use it."""
        if self._ink is None:
            self._ink = self._crop_ink(soft, labels)
        return self._ink

    def _crop_ink(self, soft: np.ndarray, labels: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        if x1 <= x0 or y1 <= y0:
            return np.zeros((0, 0), np.float32)
        # one pixel more all round for the anti-aliased rim, but never across a cut
        x0, x1 = max(x0 - 1, self.c0, 0), min(x1 + 1, self.c1, soft.shape[1])
        y0, y1 = max(y0 - 1, 0), min(y1 + 1, soft.shape[0])
        crop = labels[y0:y1, x0:x1]
        keep = np.zeros(crop.shape, np.uint8)
        for blob in self.blobs:
            keep[crop == blob.label] = 1
        keep = cv2.dilate(keep, np.ones((3, 3), np.uint8))
        return soft[y0:y1, x0:x1] * keep


# --------------------------------------------------------------------------------------------
# Lines of glyphs
# --------------------------------------------------------------------------------------------

def find_lines(mask: np.ndarray, soft: np.ndarray | None = None
               ) -> tuple[list[list[Glyph]], np.ndarray]:
    """(lines of glyphs in reading order, label image) for a binary ink mask (uint8), and
    optionally the soft ink it was thresholded from (see `remove_rules`)."""
    blobs, labels = components(mask)
    blobs = drop_specks(blobs)
    cleaned = remove_rules(mask, blobs, soft)
    if cleaned is not None:
        blobs, labels = components(cleaned)
        blobs = drop_specks(blobs)
    blobs = drop_frames_and_edges(blobs, mask.shape)
    units = join_stacked(blobs)
    lines = [merge_columns(line) for line in group_lines(units)]
    lines = drop_small_lines([drop_small_glyphs(line) for line in lines])
    lines.sort(key=lambda line: np.mean([(g.box[1] + g.box[3]) / 2 for g in line]))
    return lines, labels


def components(mask: np.ndarray) -> tuple[list[Blob], np.ndarray]:
    """8-connected components of the mask, and the label image."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    height, width = mask.shape
    blobs = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        border = x == 0 or y == 0 or x + w == width or y + h == height
        blobs.append(Blob(label, area, x, y, x + w, y + h, border))
    return blobs, labels


def drop_specks(blobs: list[Blob]) -> list[Blob]:
    """Drop dust: blobs under SPECK_AREA of the largest one (and under 3 pixels)."""
    if not blobs:
        return []
    largest = max(b.area for b in blobs)
    return [b for b in blobs if b.area >= max(3, SPECK_AREA * largest)]


def writing_height(blobs: list[Blob]) -> float:
    """How tall the writing is: the median height of the blobs with a fair share of ink."""
    if not blobs:
        return 0.0
    largest = max(b.area for b in blobs)
    return float(np.median([b.height for b in blobs if b.area >= 0.05 * largest]))


def remove_rules(mask: np.ndarray, blobs: list[Blob],
                 soft: np.ndarray | None = None) -> np.ndarray | None:
    """The mask without ruled lines, grids, margins and underlines, or None when it has none.

    A rule is a straight run of ink, horizontal or vertical, that is thin for its length and
    either crosses (almost) the whole image, like ruled or squared paper and margins, or is
    at least RULE_LENGTH times as long as the writing is tall, like an underline. A
    morphological opening with a line that long keeps exactly such runs, even where digits
    touch the rule; they are removed (with a one-pixel rim), and a stroke that crossed a rule
    is joined again across the gap, so digits on squared paper stay whole. A page
    photographed askew has its rules turned a little: when long straight lines are turned by
    up to RULE_TURN degrees, the runs are found in the mask turned straight (if a run then
    crosses the whole image: a circle or a long stroke is no page). Printed rules
    are often fainter than the writing and cross the ink threshold only in parts (where the
    light is lower, say); given the ``soft`` ink, rules are looked for in all ink above
    RULE_FAINT, so that they are found whole, and their parts in the mask removed.

    A stroke can also lie along a rule: the base of a 2 written on the line, the bar of a 7
    on a line of squared paper. Geometry cannot tell it from the rule there, but the ink
    usually can: printed rules are fainter than pen. Given the ``soft`` ink, when the
    writing is clearly darker than the rules (by RULE_CONTRAST), the pixels on a rule that
    are darker than halfway between the two are kept as writing.
    """
    marks, mark_blobs = mask, blobs
    if soft is not None:     # rules fainter than the writing may cross the threshold in parts
        marks = mask | (soft > RULE_FAINT).astype(np.uint8)
        mark_blobs = drop_specks(components(marks)[0])
    rules = [r & mask for r in _find_rules(mask, marks, blobs, mark_blobs)]
    if not (rules[0].any() or rules[1].any()):
        return None
    writing_on_rules = _writing_on_rules(mask, rules[0] | rules[1], soft)
    rim = np.ones((3, 3), np.uint8)
    rules = [cv2.dilate(r, rim) & (1 - writing_on_rules) for r in rules]
    cleaned = mask * (1 - (rules[0] | rules[1]))
    for rule, kernel in zip(rules, (np.ones((9, 1), np.uint8), np.ones((1, 9), np.uint8))):
        if rule.any():   # bridge strokes across the gap: up-down for a horizontal rule
            cleaned |= cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, kernel) & rule
    return cleaned


def _find_rules(mask: np.ndarray, marks: np.ndarray, blobs: list[Blob],
                mark_blobs: list[Blob]) -> list[np.ndarray]:
    """[horizontal, vertical] masks of the rules: those across the image found in `marks`
    (the ink with the faint marks beside it), underlines in the `mask`; both found turned
    straight when the long lines are turned a little (`_rules_turn`)."""
    height, width = mask.shape
    turn = _rules_turn(marks, mark_blobs)
    if turn:
        # a thin line turned to the nearest pixel may step between two rows: thicken it
        rim = np.ones((3, 3), np.uint8)
        straight, back = vision.turn(mask, turn, cv2.INTER_NEAREST)
        straight_marks = straight if marks is mask else \
            vision.turn(marks, turn, cv2.INTER_NEAREST)[0]
        straight, straight_marks = cv2.dilate(straight, rim), cv2.dilate(straight_marks, rim)
        rules = _straight_rules(straight, straight_marks, components(straight)[0],
                                components(straight_marks)[0], width, height, across=True)
        if rules is not None:
            return [cv2.warpAffine(r, back, (width, height), flags=cv2.INTER_NEAREST)
                    for r in rules]
    return _straight_rules(mask, marks, blobs, mark_blobs, width, height)


def _straight_rules(mask: np.ndarray, marks: np.ndarray, blobs: list[Blob],
                    mark_blobs: list[Blob], width: int, height: int, across: bool = False
                    ) -> list[np.ndarray] | None:
    """[horizontal, vertical] rules where they are straight (see `remove_rules`): thin runs
    of `marks` across 0.9 of the image's `width` (or `height`), then thin runs of the `mask`
    RULE_LENGTH times as long as the writing is tall; the masks may be larger than the
    image (turned straight). With `across`, None when there is no run across the image: a
    turn found only in shorter lines (the side of a circle, a long stroke) is no page's."""
    rules = [np.zeros_like(mask), np.zeros_like(mask)]
    # a run can only be as long as the blob holding it: most images need no morphology at all
    widest = max((b.width for b in mark_blobs), default=0)
    tallest = max((b.height for b in mark_blobs), default=0)
    _mark_runs(marks, int(0.9 * width) if widest >= 0.9 * width else 0,
               int(0.9 * height) if tallest >= 0.9 * height else 0,
               lambda long, thick: long >= 25 * thick, rules, beside=3)
    found = rules[0] | rules[1]
    if across and not found.any():
        return None
    tall = writing_height(components(mask * (1 - found))[0] if found.any() else blobs)
    if tall > 0:
        widest = max((b.width for b in blobs), default=0)
        tallest = max((b.height for b in blobs), default=0)
        length = max(25, int(RULE_LENGTH * tall))
        _mark_runs(mask, length if widest >= length else 0, length if tallest >= length else 0,
                   lambda long, thick: thick <= max(3.0, RULE_THICKNESS * tall), rules)
    return rules


def _rules_turn(mask: np.ndarray, blobs: list[Blob]) -> float:
    """The angle in degrees (counter-clockwise) that would make the image's long straight
    lines horizontal or vertical, if they are turned by 0.25 to RULE_TURN degrees; else 0.

    Only images with a blob half as wide or as tall as the image can hold such lines. The
    angle is the median of the strongest Hough lines (at least half the image long) within
    RULE_TURN degrees of horizontal, or else of vertical."""
    height, width = mask.shape
    step = np.pi / 1440                       # an eighth of a degree
    near = int(RULE_TURN * 8)
    searches = []
    if max((b.width for b in blobs), default=0) >= 0.5 * width:
        searches.append((width, np.pi / 2 - near * step, np.pi / 2 + near * step, 90.0))
    if max((b.height for b in blobs), default=0) >= 0.5 * height:
        searches += [(height, 0.0, near * step, 0.0), (height, np.pi - near * step, np.pi, 180.0)]
    for extent, low, high, upright in searches:
        found = cv2.HoughLines(mask, 1, step, max(25, int(0.5 * extent)), min_theta=low,
                               max_theta=high)
        if found is not None:
            turn = float(np.median(np.degrees(found[:10, 0, 1]))) - upright
            return turn if abs(turn) >= 0.25 else 0.0
    return 0.0


def _writing_on_rules(mask: np.ndarray, rules: np.ndarray, soft: np.ndarray | None
                      ) -> np.ndarray:
    """The pixels on or beside the rules (uint8 mask) dark enough to be writing: darker than
    halfway between the rules' ink and the rest of the writing's, when those differ by at
    least RULE_CONTRAST; none otherwise (or without ``soft``)."""
    near = cv2.dilate(rules, np.ones((3, 3), np.uint8))
    writing = (mask > 0) & (near == 0)
    if soft is None or not writing.any():
        return np.zeros_like(mask)
    rule_ink = float(np.median(soft[rules > 0]))
    writing_ink = float(np.median(soft[writing]))
    if writing_ink - rule_ink < RULE_CONTRAST:
        return np.zeros_like(mask)
    return ((near > 0) & (mask > 0) & (soft > (rule_ink + writing_ink) / 2)).astype(np.uint8)


def _mark_runs(mask, across: int, down: int, thin, rules: list[np.ndarray],
               beside: int | None = None) -> None:
    """Mark in rules[0] the horizontal runs at least `across` long and in rules[1] the
    vertical ones at least `down` long whose (length, thickness) satisfy `thin`.

    The thickness is the run's own mean, or with ``beside`` the median across its length of
    all the ink within `beside` pixels of it (the median, as other rules crossing it make it
    thicker there): the opening keeps only the straight core of a thick stroke, so a long
    straight stroke (a 1 filling its image) would pass for a thin rule."""
    for length, shape, found in ((across, (1, across), rules[0]), (down, (down, 1), rules[1])):
        if length < 25 or length >= max(mask.shape):
            continue
        runs = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones(shape, np.uint8))
        if not cv2.countNonZero(runs):
            continue
        count, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            long_side = max(w, h)
            thick = area / long_side
            if beside is not None:
                m = beside
                if w >= h:
                    thick = float(np.median(mask[max(0, y - m):y + h + m, x:x + w].sum(axis=0)))
                else:
                    thick = float(np.median(mask[y:y + h, max(0, x - m):x + w + m].sum(axis=1)))
            if thin(long_side, thick):
                found[labels == label] = 1


def drop_frames_and_edges(blobs: list[Blob], shape: tuple[int, int]) -> list[Blob]:
    """Drop page edges (long thin blobs along the border), frames around other ink, and
    pieces of rules: blobs at least RULE_PIECE times as long as the rest of the writing is
    tall, and under RULE_PIECE_WIDTH of that length wide (the end of a rule on a page
    photographed askew, cut short by the image's edge, is no digit however tall)."""
    height, width = shape
    kept = []
    for b in blobs:
        if b.border and ((b.width > 0.8 * width and b.height < 0.2 * height)
                         or (b.height > 0.8 * height and b.width < 0.2 * width)):
            continue
        if _rule_piece(b, blobs):
            continue
        fill = b.area / max(1, b.width * b.height)
        inside = [o for o in blobs if o is not b and o.area >= 0.1 * b.area
                  and o.x0 > b.x0 and o.x1 < b.x1 and o.y0 > b.y0 and o.y1 < b.y1]
        if fill < FRAME_FILL and inside:
            continue
        kept.append(b)
    if len(kept) > 1:   # a border blob much bigger than all the others is a shadow or edge
        inner = [b for b in kept if not b.border]
        if inner:
            biggest_inner = max(b.area for b in inner)
            kept = [b for b in kept if not b.border or b.area <= 3 * biggest_inner
                    or b.height < 0.8 * height]
    return kept


def _rule_piece(blob: Blob, blobs: list[Blob]) -> bool:
    """Is the blob a straight thin piece much longer than the other blobs are tall?"""
    long, short = max(blob.width, blob.height), min(blob.width, blob.height)
    if short > RULE_PIECE_WIDTH * long:
        return False
    others = [b for b in blobs if b is not blob]
    tall = writing_height(others)
    return tall > 0 and long >= RULE_PIECE * tall


def join_stacked(blobs: list[Blob]) -> list[list[Blob]]:
    """Group blobs into units; a unit joins pieces lying one above the other, almost touching.

    Two pieces join when one of these holds:

    - they overlap left to right by more than STACK_OVERLAP of the narrower one (the halves
      of a slanted 8 drawn apart are offset sideways) and the gap between them is under
      STACK_GAP of their joint height (lines of writing are further apart than that);
    - the smaller is less than half as tall, at most PIECE_GAP of the larger one's height
      away, above or to the side (the detached flag of a 5);
    - both are flat (few digits are 1.5 times as wide as tall), overlap by half of the
      narrower one and together are shaped like a digit (the top and belly of a 5 drawn
      apart).

    With three blobs or more, the joined unit may not be taller than STACK_HEIGHT times the
    writing, unless the gap is a mere cut through a stroke (under CUT_GAP of the shorter
    piece's height).
    """
    units = [[b] for b in sorted(blobs, key=lambda b: b.y0)]
    # with a few blobs to go by, a joined unit may not be much taller than the writing: the
    # rows of a table of numbers lie close one above the other too
    limit = STACK_HEIGHT * writing_height(blobs) if len(blobs) >= 3 else float("inf")
    merged = True
    while merged:
        merged = False
        for i in range(len(units)):
            for j in range(i + 1, len(units)):
                a, b = _box(units[i]), _box(units[j])
                overlap = min(a[2], b[2]) - max(a[0], b[0])
                narrower = min(a[2] - a[0], b[2] - b[0])
                top, bottom = min(a[1], b[1]), max(a[3], b[3])
                gap = max(a[1], b[1]) - min(a[3], b[3])
                taller = max(a[3] - a[1], b[3] - b[1])
                shorter = min(a[3] - a[1], b[3] - b[1])
                close = overlap > STACK_OVERLAP * narrower and gap < STACK_GAP * (bottom - top)
                piece = (shorter < 0.5 * taller and overlap > -PIECE_GAP * taller
                         and gap < PIECE_GAP * taller)
                wide = max(a[2], b[2]) - min(a[0], b[0])
                flat = sorted(((a[2] - a[0]) / max(1, a[3] - a[1]),
                               (b[2] - b[0]) / max(1, b[3] - b[1])))
                halves = (overlap > 0.5 * narrower and gap < PIECE_GAP * (bottom - top)
                          and flat[0] > 1.2 and flat[1] > 1.5 and wide < 1.2 * (bottom - top))
                touching = overlap > 0.5 * narrower and gap < CUT_GAP * shorter
                if gap > -0.5 * shorter and (touching or (close or piece or halves)
                                             and bottom - top <= limit):
                    units[i] += units.pop(j)
                    merged = True
                    break
            if merged:
                break
    return units


def _box(blobs: list[Blob]) -> tuple[int, int, int, int]:
    return (min(b.x0 for b in blobs), min(b.y0 for b in blobs),
            max(b.x1 for b in blobs), max(b.y1 for b in blobs))


def group_lines(units: list[list[Blob]]) -> list[list[list[Blob]]]:
    """Assign units, left to right, to the line whose nearest units they overlap most in y."""
    lines: list[list[list[Blob]]] = []
    for unit in sorted(units, key=lambda u: _box(u)[0]):
        _, y0, _, y1 = _box(unit)
        best, best_overlap = None, 0.5
        for line in lines:
            near = [_box(u) for u in line[-2:]]
            band0, band1 = min(b[1] for b in near), max(b[3] for b in near)
            overlap = (min(y1, band1) - max(y0, band0)) / max(1, min(y1 - y0, band1 - band0))
            if overlap > best_overlap:
                best, best_overlap = line, overlap
        if best is None:
            lines.append([unit])
        else:
            best.append(unit)
    return lines


def merge_columns(line: list[list[Blob]]) -> list[Glyph]:
    """Within a line, join units overlapping by more than half of the narrower one's width."""
    glyphs: list[list[Blob]] = []
    for unit in sorted(line, key=lambda u: _box(u)[0]):
        x0, _, x1, _ = _box(unit)
        for glyph in glyphs:
            g0, _, g1, _ = _box(glyph)
            if min(g1, x1) - max(g0, x0) > 0.5 * min(g1 - g0, x1 - x0):
                glyph += unit
                break
        else:
            glyphs.append(list(unit))
    return sorted((Glyph(blobs) for blobs in glyphs), key=lambda g: g.box[0])


def drop_small_glyphs(line: list[Glyph]) -> list[Glyph]:
    """Drop dots, commas, dashes and dust next to the line's digits, after joining slivers
    (a stroke of a digit broken off beside it) to the digit they almost touch.

    A dropped glyph within PIECE_GAP of a kept one's height beside it, and level with its
    upper three quarters, is kept on that glyph as `loose`: it may be the detached flag or bar
    of a 5 or a 7, which only the network can tell from a dash beside a digit."""
    line = attach_slivers(line)
    tallest = max(g.height for g in line)
    kept = [g for g in line if g.height >= SMALL_GLYPH * tallest]
    for small in (g for g in line if g.height < SMALL_GLYPH * tallest):
        middle = (small.box[1] + small.box[3]) / 2
        near = [(gap, g) for g in kept if g.box[1] <= middle <= g.box[1] + 0.75 * g.height
                and (gap := _gap(small, g)) < PIECE_GAP * g.height]
        if near:
            min(near, key=lambda pair: pair[0])[1].loose.append(small)
    return kept


def join_options(line: list[Glyph]) -> list[int]:
    """Indices i such that glyphs i and i + 1 of a line (left to right) may be one digit.

    Two glyphs side by side are usually two digits, but a digit drawn in two strokes that do
    not meet (a 5 whose flag floats to its right, a 4 or a 7 whose bar was drawn apart) makes
    two glyphs too. Such a piece is clearly shorter than the rest, close beside it, and the
    two together are shaped like one digit. `tinynet.read` joins them only when the network
    reads the pair as one digit far better than as two."""
    options = []
    for i in range(len(line) - 1):
        a, b = line[i], line[i + 1]
        taller, shorter = max(a.height, b.height), min(a.height, b.height)
        both = a.joined(b)
        if shorter < JOIN_HEIGHT * taller and _gap(a, b) < PIECE_GAP * taller \
                and both.width <= JOIN_ASPECT * both.height:
            options.append(i)
    return options


def _gap(a: Glyph, b: Glyph) -> int:
    """The horizontal gap between two glyphs (negative when they overlap left to right)."""
    return max(a.box[0] - b.box[2], b.box[0] - a.box[2])


def attach_slivers(line: list[Glyph]) -> list[Glyph]:
    """Join each sliver (a thin glyph clearly shorter than a neighbour and almost touching
    it) to that neighbour; a 1 is as tall as the digits beside it, so it is not a sliver."""
    line = sorted(line, key=lambda g: g.box[0])
    k = 0
    while k < len(line):
        g = line[k]
        if g.width < SLIVER_WIDTH * g.height:
            for n in (k - 1, k + 1):
                if not 0 <= n < len(line):
                    continue
                other = line[n]
                gap = max(other.box[0] - g.box[2], g.box[0] - other.box[2])
                if g.height < 0.7 * other.height and gap < 0.15 * other.height:
                    line[n] = Glyph(other.blobs + g.blobs)
                    del line[k]
                    k -= 1
                    break
        k += 1
    return line


def drop_small_lines(lines: list[list[Glyph]]) -> list[list[Glyph]]:
    """Drop lines far smaller than the largest line, in height and in ink (noise)."""
    lines = [line for line in lines if line]
    if not lines:
        return []
    tallest = max(g.height for line in lines for g in line)
    most_ink = max(sum(g.area for g in line) for line in lines)
    kept = []
    for line in lines:
        line_tallest = max(g.height for g in line)
        # bits cut off by the image's edge (a shadow's rim, the next word) are not a line
        if all(any(b.border for b in g.blobs) for g in line) and line_tallest < 0.6 * tallest:
            continue
        if line_tallest >= SMALL_LINE * tallest or \
                sum(g.area for g in line) >= SMALL_LINE_AREA * most_ink:
            kept.append(line)
    return kept


# --------------------------------------------------------------------------------------------
# Ways to cut a glyph into digits
# --------------------------------------------------------------------------------------------

def split_options(glyph: Glyph, soft: np.ndarray, labels: np.ndarray,
                  most: int = 1) -> list[tuple[Glyph, Glyph]]:
    """Up to `most` ways to cut a glyph in two (left, right) for the network to judge.

    Two kinds of cut: between blobs (digits that overlap a little left to right but do not
    touch), and, for a glyph wide for its height, down a column where there is little ink
    (digits that touch). Each side keeps at least PIECE_WIDTH of the height.
    """
    options: list[tuple[Glyph, Glyph]] = []
    x0, y0, x1, y1 = glyph.box
    min_width = max(2, PIECE_WIDTH * glyph.height)
    big = sorted((b for b in glyph.blobs if b.area >= 0.15 * glyph.area),
                 key=lambda b: (b.x0 + b.x1) / 2)
    for k in range(1, len(big)):
        left_edge = (big[k - 1].x0 + big[k - 1].x1) / 2
        right_edge = (big[k].x0 + big[k].x1) / 2
        left = [b for b in glyph.blobs if (b.x0 + b.x1) / 2 <= left_edge]
        right = [b for b in glyph.blobs if (b.x0 + b.x1) / 2 >= right_edge]
        rest = [b for b in glyph.blobs if b not in left and b not in right]
        # small pieces between the two go with the side whose centre they are nearer
        for b in rest:
            centre = (b.x0 + b.x1) / 2
            (left if centre - left_edge < right_edge - centre else right).append(b)
        options.append((Glyph(left, glyph.c0, glyph.c1), Glyph(right, glyph.c0, glyph.c1)))
    if glyph.width >= SPLIT_ASPECT * glyph.height and glyph.width >= 2 * min_width:
        columns = glyph.ink(soft, labels).sum(axis=0)
        columns = np.convolve(columns, np.ones(3) / 3, mode="same")
        lo, hi = int(np.ceil(min_width)), glyph.width - int(np.ceil(min_width))
        order = lo + np.argsort(columns[lo:hi], kind="stable")
        cuts: list[int] = []
        for c in order:
            if all(abs(int(c) - o) > 0.15 * glyph.width for o in cuts):
                cuts.append(int(c))
            if len(cuts) == most:
                break
        for cut in cuts:
            left = Glyph(glyph.blobs, glyph.c0 if glyph.c0 > x0 else x0, x0 + cut)
            right = Glyph(glyph.blobs, x0 + cut, glyph.c1 if glyph.c1 < x1 else x1)
            left, right = _shrink_to_ink(left, soft, labels), _shrink_to_ink(right, soft, labels)
            if left is not None and right is not None:
                options.append((left, right))
    # digits written side by side are of a height: a cut leaving a sliver or a tail is not
    # two digits, however confidently the network reads the sliver
    tall_enough = [(a, b) for a, b in options
                   if min(a.height, b.height) >= PIECE_HEIGHT * glyph.height]
    return tall_enough[: most + 1]


def _shrink_to_ink(glyph: Glyph, soft: np.ndarray, labels: np.ndarray) -> Glyph | None:
    """The glyph with its box shrunk to the ink actually inside its columns (None if empty)."""
    ink = glyph.ink(soft, labels)
    if ink.size == 0:
        return None
    ys, xs = np.nonzero(ink > 0.05)
    if ys.size < 3:
        return None
    x0 = max(glyph.box[0] - 1, glyph.c0, 0)
    y0 = max(glyph.box[1] - 1, 0)
    box = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
    return Glyph(glyph.blobs, glyph.c0, glyph.c1, box)
