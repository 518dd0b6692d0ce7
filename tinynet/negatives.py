"""Draw MNIST-style "not a digit" glyphs: the training images of an 11th class (label 10).

A digit recognizer trained only on digits calls everything a digit: a letter, a smiley, a
scribble or half of a torn-off digit comes out as whichever digit it happens to resemble.
Giving the network a class for "not a digit" needs many examples of handwriting that is not a
digit, made exactly the way the reader makes digits, so that the only thing the network can
learn is the shape. `draw(n, rng, digits)` makes them, in a mix of kinds (`KINDS`):

- ``letter``: upper and lower case Latin letters that cannot be mistaken for a digit;
- ``symbol``: maths and punctuation signs, arrows, a brace, check marks;
- ``doodle``: stars, hearts, smileys, spirals, houses, suns, flowers, bolts, waves, ...;
- ``scribble``: random smooth curves, hatching and rows of tangled loops;
- ``partial``: an MNIST digit cut by a random straight line, keeping 30-60% of its ink.

How one glyph is made (all but ``partial``): a pen-stroke skeleton, a few polylines in a unit
box (x to the right, y downwards, as in ``examples/make_digits.py``), is jittered (rotation,
slant, aspect, a smooth wobble of every point and a small shift of every stroke, as a hand
never draws the same thing twice) and drawn with anti-aliased, sub-pixel OpenCV polylines
into a canvas of random size (48-128 px) with a random pen (hairline to marker). The ink
coverage then goes through `tinynet.vision.render_digit`, the very function the reader feeds
the network with: crop, stroke-width fix, 20x20 box, centre of mass at (14, 14).

A ``partial`` glyph is an MNIST digit with the ink on one side of a random line kept (the
line placed so that 30-60% of the ink stays), enlarged 3x with its edges sharpened (else the
enlarging in render_digit would leave it blurrier than any digit, a shortcut for the network),
cleared of the specks the cut leaves, and rendered the same way.

Shapes that could read as a digit are left out on purpose (see `EXCLUDED_LETTERS` and the
comments at the symbols, doodles and scribbles). An output is redrawn, with a new shape, when
its ink is a thin near-vertical bar (narrower than 0.4 of its height: a 1), when a shape made
at random (a scribble or a piece of a digit) is a lone stroke slanted any way (also a 1), or
when it is too lopsided to centre by mass as MNIST digits are.

The same seed gives the same images: all randomness comes from the passed Generator.
"""

from __future__ import annotations

import cv2
import numpy as np

from .errors import ImageError
from .vision import render_digit

__all__ = ["KINDS", "LETTERS", "SYMBOLS", "DOODLES", "SCRIBBLES", "EXCLUDED_LETTERS", "draw"]

SIZE = 28
MIN_WIDTH_RATIO = 0.4        # ink narrower than this x its height reads as a 1: redraw it
CANVAS = (48, 128)           # side of the drawing canvas, pixels
PEN = (0.012, 0.11)          # pen width as a fraction of the canvas: hairline .. marker
INK_AREA = 0.3               # most of the glyph's box the pen may cover
SHIFT = 4                    # cv2 sub-pixel bits
MIN_SLENDERNESS = 0.35       # random shapes thinner are a lone stroke: 97.6% of MNIST 1s are
SPECK = 0.15                 # a piece's fragments smaller than this x the largest are dropped
PARTIAL_ROUNDS = 50          # rounds of redrawing rejected pieces before giving up
MAX_OFF_CENTRE = 1.0         # pixels between the centre of mass and (14, 14)

# The mix of kinds: mostly letters and symbols, the things people write beside digits.
# Partial digits weigh least: some pieces still look like a digit (the top of a 7 is a 7).
KINDS = {"letter": 0.32, "symbol": 0.22, "doodle": 0.18, "scribble": 0.16, "partial": 0.12}


# --------------------------------------------------------------------------------------------
# Skeleton building blocks (unit box, x right, y down, angles in degrees, 90 = down)
# --------------------------------------------------------------------------------------------

def arc(cx, cy, rx, ry, start, stop, steps=24):
    """Points of an elliptic arc from angle `start` to `stop` (0 = right, 90 = down)."""
    angles = np.radians(np.linspace(start, stop, steps))
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def line(*points):
    """A polyline through the given (x, y) points."""
    return np.array(points, dtype=np.float64)


def join(*pieces):
    """One stroke made of pieces drawn without lifting the pen."""
    return np.concatenate(pieces)


def dot(x, y):
    """A pen dab: a stroke too short to see as a line."""
    return line((x, y), (x + 0.01, y + 0.01))


def circle(cx, cy, r, steps=40):
    """A closed circle, starting at the top like a hand does."""
    return arc(cx, cy, r, r, -90, 270, steps)


def chaikin(points, rounds=3, closed=False):
    """Smooth a polyline by corner cutting (Chaikin): each round replaces every segment by
    its 1/4 and 3/4 points, converging to a quadratic B-spline through the control points."""
    for _ in range(rounds):
        if closed:
            points = np.concatenate([points, points[:1]])
        a, b = points[:-1], points[1:]
        cut = np.stack([0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b], axis=1).reshape(-1, 2)
        points = cut if closed else np.concatenate([points[:1], cut, points[-1:]])
    return np.concatenate([points, points[:1]]) if closed else points


def sine(x0, x1, y, amplitude, cycles, phase=0.0, steps=48):
    """A horizontal wave from x0 to x1 around height y."""
    x = np.linspace(x0, x1, steps)
    t = np.linspace(0, 2 * np.pi * cycles, steps) + phase
    return np.stack([x, y - amplitude * np.sin(t)], axis=1)


def spokes(cx, cy, radius, angles):
    """Straight strokes through (cx, cy) at the given angles (degrees)."""
    out = []
    for a in np.radians(angles):
        d = radius * np.array([np.cos(a), np.sin(a)])
        out.append(line((cx - d[0], cy - d[1]), (cx + d[0], cy + d[1])))
    return out


# --------------------------------------------------------------------------------------------
# Letters
# --------------------------------------------------------------------------------------------

# Letters that look like a digit in somebody's handwriting, and so would teach the network to
# call a real digit "not a digit": O o Q D (0), I l i j J (1), S s (5), Z z (2), B (8),
# G b (6), g q (9); also A and y (open and closed 4s), T (a 7 without its slant is a T),
# C c (an open 0, or a 6 without its loop closed), a (a 9 or a small 0 with a tail),
# d (a mirrored 6, or a 9 with its stem down), P p (a mirrored 9).
EXCLUDED_LETTERS = frozenset("OoQDIlijJSsZzBGbgqAyTCcadPp")

LETTERS = {
    "E": [line((0.75, 0.05), (0.25, 0.05), (0.25, 0.95), (0.75, 0.95)),
          line((0.25, 0.5), (0.65, 0.5))],
    "F": [line((0.78, 0.05), (0.25, 0.05), (0.25, 0.95)), line((0.25, 0.47), (0.66, 0.47))],
    "H": [line((0.22, 0.05), (0.22, 0.95)), line((0.78, 0.05), (0.78, 0.95)),
          line((0.22, 0.5), (0.78, 0.5))],
    "K": [line((0.25, 0.05), (0.25, 0.95)), line((0.78, 0.05), (0.26, 0.58)),
          line((0.42, 0.42), (0.8, 0.95))],
    "L": [line((0.25, 0.05), (0.25, 0.95), (0.82, 0.95))],
    "M": [line((0.12, 0.95), (0.18, 0.05), (0.5, 0.65), (0.82, 0.05), (0.88, 0.95))],
    "N": [line((0.2, 0.95), (0.2, 0.05), (0.8, 0.95), (0.8, 0.05))],
    "R": [line((0.25, 0.95), (0.25, 0.05)),
          join(line((0.25, 0.05), (0.5, 0.05)), arc(0.5, 0.27, 0.25, 0.22, -90, 90),
               line((0.25, 0.49))),
          line((0.45, 0.49), (0.8, 0.95))],
    "U": [join(line((0.2, 0.05), (0.2, 0.6)), arc(0.5, 0.6, 0.3, 0.35, 180, 0),
               line((0.8, 0.05)))],
    "V": [line((0.15, 0.05), (0.5, 0.95), (0.85, 0.05))],
    "W": [line((0.05, 0.05), (0.27, 0.95), (0.5, 0.35), (0.73, 0.95), (0.95, 0.05))],
    "X": [line((0.2, 0.05), (0.8, 0.95)), line((0.8, 0.05), (0.2, 0.95))],
    "Y": [line((0.15, 0.05), (0.5, 0.5)), line((0.85, 0.05), (0.5, 0.5), (0.5, 0.95))],
    "e": [join(line((0.2, 0.52), (0.8, 0.52)), arc(0.5, 0.55, 0.3, 0.4, -5, -320))],
    "f": [join(arc(0.58, 0.22, 0.2, 0.17, -20, -180), line((0.38, 0.95))),
          line((0.15, 0.42), (0.65, 0.42))],
    "h": [line((0.25, 0.02), (0.25, 0.98)),
          join(arc(0.5, 0.62, 0.25, 0.22, 180, 360), line((0.75, 0.98)))],
    "k": [line((0.25, 0.02), (0.25, 0.98)), line((0.75, 0.4), (0.27, 0.7), (0.78, 0.98))],
    "m": [line((0.1, 0.3), (0.1, 0.95)),
          join(arc(0.3, 0.47, 0.2, 0.18, 180, 360), line((0.5, 0.95))),
          join(arc(0.7, 0.47, 0.2, 0.18, 180, 360), line((0.9, 0.95)))],
    "n": [line((0.2, 0.2), (0.2, 0.95)),
          join(arc(0.5, 0.47, 0.3, 0.27, 180, 360), line((0.8, 0.95)))],
    "r": [line((0.3, 0.2), (0.3, 0.95)), arc(0.58, 0.47, 0.28, 0.25, 180, 300)],
    "t": [join(line((0.42, 0.05), (0.42, 0.78)), arc(0.6, 0.78, 0.18, 0.17, 180, 45)),
          line((0.15, 0.32), (0.75, 0.32))],
    "u": [join(line((0.2, 0.15), (0.2, 0.6)), arc(0.48, 0.6, 0.28, 0.32, 180, 0)),
          line((0.78, 0.15), (0.8, 0.95))],
    "v": [line((0.15, 0.3), (0.5, 0.95), (0.85, 0.3))],
    "w": [line((0.05, 0.3), (0.27, 0.95), (0.5, 0.5), (0.73, 0.95), (0.95, 0.3))],
    "x": [line((0.2, 0.3), (0.8, 0.95)), line((0.8, 0.3), (0.2, 0.95))],
}


# --------------------------------------------------------------------------------------------
# Symbols
# --------------------------------------------------------------------------------------------

def _infinity(steps=80):
    """A lemniscate: a figure 8 lying on its side (wide, so never read as an 8)."""
    t = np.linspace(0, 2 * np.pi, steps)
    s = 1 + np.sin(t) ** 2
    return np.stack([0.5 + 0.45 * np.cos(t) / s, 0.5 + 0.45 * np.sin(t) * np.cos(t) / s], 1)


def _left_brace():
    """A curly brace "{" (the right one, "}", is a pointed 3)."""
    xs = np.array([0.75, 0.48, 0.46, 0.2, 0.46, 0.48, 0.75])
    ys = np.array([0.03, 0.1, 0.4, 0.5, 0.6, 0.9, 0.97])
    return [chaikin(np.stack([xs, ys], 1))]


def _arrow_head(x, y, direction):
    """Two barbs at (x, y) for an arrow pointing right (+1) or left (-1)."""
    return line((x - direction * 0.25, 0.25), (x, y), (x - direction * 0.25, 0.75))


# Left out: a lone ( ) | / - . (a 1 or a speck), vertical and diagonal arrows (an up arrow is
# a 1 with a flag, a diagonal one a 7 with an extra bar), "!" alone (a 1; drawn as "!!"),
# "}" (a 3 with a pointed middle).
SYMBOLS = {
    "plus": spokes(0.5, 0.5, 0.42, [0, 90]),
    "times": spokes(0.5, 0.5, 0.42, [45, 135]),
    "asterisk": spokes(0.5, 0.5, 0.45, [90, 30, 150]),
    "hash": [line((0.38, 0.08), (0.3, 0.92)), line((0.72, 0.08), (0.64, 0.92)),
             line((0.1, 0.35), (0.9, 0.35)), line((0.08, 0.65), (0.88, 0.65))],
    "at": [arc(0.52, 0.5, 0.15, 0.17, 0, 360),
           join(line((0.67, 0.32), (0.67, 0.6), (0.8, 0.64)),
                arc(0.5, 0.5, 0.42, 0.42, 20, -300, 40))],
    "ampersand": [join(line((0.85, 0.95), (0.35, 0.36)), arc(0.45, 0.22, 0.15, 0.15, 135, 405),
                       line((0.2, 0.65)), arc(0.38, 0.75, 0.2, 0.2, 180, -20),
                       line((0.88, 0.5)))],
    "percent": [line((0.8, 0.08), (0.2, 0.92)), circle(0.27, 0.22, 0.13),
                circle(0.73, 0.78, 0.13)],
    "dollar": [join(arc(0.5, 0.3, 0.25, 0.2, -30, -270), arc(0.5, 0.7, 0.25, 0.2, -90, 150)),
               line((0.5, 0.0), (0.5, 1.0))],
    "question": [join(arc(0.5, 0.3, 0.28, 0.22, 200, 400), line((0.5, 0.58), (0.5, 0.72))),
                 dot(0.5, 0.9)],
    "exclamations": [line((0.3, 0.05), (0.32, 0.7)), dot(0.32, 0.92),
                     line((0.7, 0.05), (0.68, 0.7)), dot(0.68, 0.92)],
    "equals": [line((0.1, 0.35), (0.9, 0.35)), line((0.1, 0.65), (0.9, 0.65))],
    "not_equal": [line((0.1, 0.35), (0.9, 0.35)), line((0.1, 0.65), (0.9, 0.65)),
                  line((0.7, 0.08), (0.3, 0.92))],
    "divide": [line((0.1, 0.5), (0.9, 0.5)), dot(0.5, 0.2), dot(0.5, 0.8)],
    "less": [line((0.8, 0.1), (0.2, 0.5), (0.8, 0.9))],
    "greater": [line((0.2, 0.1), (0.8, 0.5), (0.2, 0.9))],
    "arrow_right": [line((0.05, 0.5), (0.95, 0.5)), _arrow_head(0.95, 0.5, 1)],
    "arrow_left": [line((0.95, 0.5), (0.05, 0.5)), _arrow_head(0.05, 0.5, -1)],
    "arrow_both": [line((0.05, 0.5), (0.95, 0.5)), _arrow_head(0.95, 0.5, 1),
                   _arrow_head(0.05, 0.5, -1)],
    "tilde": [sine(0.1, 0.9, 0.5, 0.12, 1)],
    "infinity": [_infinity()],
    "brace": _left_brace(),
    "check": [line((0.1, 0.55), (0.38, 0.9), (0.9, 0.1))],
}


# --------------------------------------------------------------------------------------------
# Doodles: functions of the Generator, as each one varies in its number of parts
# --------------------------------------------------------------------------------------------

def _star(rng):
    points = int(rng.choice([5, 7]))
    step = 360 * (points // 2) / points          # skip vertices: a one-stroke star polygon
    angles = np.radians(-90 + step * np.arange(points + 1))
    return [np.stack([0.5 + 0.45 * np.cos(angles), 0.52 + 0.45 * np.sin(angles)], 1)]


def _heart(rng):
    t = np.linspace(0, 2 * np.pi, 60)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [np.stack([0.5 + x / 36, 0.45 + y / 36], 1)]


def _smiley(rng):
    mood = rng.choice([-1, 1])                   # a smile or a frown
    mouth = arc(0.5, 0.58, 0.22, 0.15, 20, 160) if mood > 0 else arc(
        0.5, 0.78, 0.22, 0.12, 200, 340)
    return [circle(0.5, 0.5, 0.45), dot(0.35, 0.36), dot(0.65, 0.36), mouth]


def _spiral(rng):
    turns = rng.uniform(2.0, 3.0)             # more turns fill in at 20 px
    theta = np.linspace(0, 2 * np.pi * turns, int(60 * turns))
    r = 0.04 + 0.42 * theta / theta[-1]
    way = rng.choice([-1, 1])
    return [np.stack([0.5 + r * np.cos(way * theta), 0.5 + r * np.sin(way * theta)], 1)]


def _house(rng):
    out = [line((0.15, 0.45), (0.15, 0.95), (0.85, 0.95), (0.85, 0.45), (0.15, 0.45)),
           line((0.08, 0.5), (0.5, 0.08), (0.92, 0.5))]
    if rng.random() < 0.7:
        out.append(line((0.42, 0.95), (0.42, 0.7), (0.58, 0.7), (0.58, 0.95)))
    return out


def _sun(rng):
    rays = int(rng.integers(6, 13))
    angles = np.radians(np.arange(rays) * 360 / rays + rng.uniform(0, 360))
    out = [circle(0.5, 0.5, 0.2)]
    for a in angles:
        c, s = np.cos(a), np.sin(a)
        out.append(line((0.5 + 0.28 * c, 0.5 + 0.28 * s), (0.5 + 0.47 * c, 0.5 + 0.47 * s)))
    return out


def _flower(rng):
    petals = int(rng.integers(4, 8))
    t = np.linspace(0, 2 * np.pi, 30)
    out = [circle(0.5, 0.5, 0.1, 24)]
    for a in np.radians(np.arange(petals) * 360 / petals + rng.uniform(0, 360)):
        ex, ey = 0.19 * np.cos(t) + 0.29, 0.1 * np.sin(t)
        out.append(np.stack([0.5 + ex * np.cos(a) - ey * np.sin(a),
                             0.5 + ex * np.sin(a) + ey * np.cos(a)], 1))
    return out


def _bolt(rng):
    return [line((0.6, 0.02), (0.2, 0.55), (0.5, 0.55), (0.35, 0.98), (0.82, 0.4),
                 (0.52, 0.4), (0.6, 0.02))]


def _waves(rng):
    rows = int(rng.integers(2, 4))
    cycles = rng.uniform(1.5, 3)
    return [sine(0.05, 0.95, 0.5 + 0.3 * (i - (rows - 1) / 2), 0.08, cycles)
            for i in range(rows)]


def _zigzag(rng):
    # 3-5 teeth: more merge into a bar at 20 px
    teeth = int(rng.integers(3, 6))
    x = np.linspace(0.05, 0.95, 2 * teeth + 1)
    rows = int(rng.integers(1, 3))
    return [np.stack([x, 0.5 + 0.45 * (r - (rows - 1) / 2) + 0.15 * (-1) ** np.arange(x.size)],
                     1) for r in range(rows)]


def _box_cross(rng):
    return [line((0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.1)),
            line((0.1, 0.1), (0.9, 0.9)), line((0.9, 0.1), (0.1, 0.9))]


def _envelope(rng):
    return [line((0.05, 0.2), (0.95, 0.2), (0.95, 0.8), (0.05, 0.8), (0.05, 0.2)),
            line((0.05, 0.2), (0.5, 0.55), (0.95, 0.2))]


def _fish(rng):
    body = [chaikin(line((0.05, 0.5), (0.45, 0.12), (0.95, 0.8))),
            chaikin(line((0.05, 0.5), (0.45, 0.88), (0.95, 0.2))),
            line((0.95, 0.2), (0.95, 0.8))]
    return body + [dot(0.25, 0.45)]


def _tree(rng):
    return [line((0.5, 0.05), (0.2, 0.4), (0.38, 0.4), (0.12, 0.75), (0.88, 0.75),
                 (0.62, 0.4), (0.8, 0.4), (0.5, 0.05)),
            line((0.44, 0.75), (0.44, 0.95), (0.56, 0.95), (0.56, 0.75))]


def _stick_figure(rng):
    return [circle(0.5, 0.15, 0.12, 24), line((0.5, 0.27), (0.5, 0.65)),
            line((0.15, 0.42), (0.5, 0.38), (0.85, 0.42)),
            line((0.2, 0.98), (0.5, 0.65), (0.8, 0.98))]


# Left out: plain circles and ellipses (a 0), single straight strokes (a 1), a flower on a
# stem or a balloon on a string (a 9 or a 6).
DOODLES = {
    "star": _star, "heart": _heart, "smiley": _smiley, "spiral": _spiral, "house": _house,
    "sun": _sun, "flower": _flower, "bolt": _bolt, "waves": _waves, "zigzag": _zigzag,
    "box_cross": _box_cross, "envelope": _envelope, "fish": _fish, "tree": _tree,
    "stick_figure": _stick_figure,
}


# --------------------------------------------------------------------------------------------
# Scribbles
# --------------------------------------------------------------------------------------------

def _random_curve(rng):
    """A smooth open curve through 6-12 random points. Fewer points often make a 2, 7, 6 or
    1, and a closed curve a 0."""
    points = rng.uniform(0, 1, (int(rng.integers(6, 13)), 2))
    return [chaikin(points, rounds=4)]


def _hatching(rng):
    """Parallel strokes, sometimes crossed by a second set. At most 6 a set: MNIST's 20 px
    box with its 2.4 px strokes cannot show more, they would merge into a blob."""
    out = []
    angle = rng.uniform(0, 180)
    turns = [0.0]
    if rng.random() < 0.4:
        turns.append(rng.uniform(50, 130))     # cross-hatching
    for turn in turns:
        a = np.radians(angle + turn)
        along, across = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        count = int(rng.integers(3, 7))
        for k in np.linspace(-0.4, 0.4, count):
            half = rng.uniform(0.3, 0.5)
            centre = 0.5 + across * k + along * rng.uniform(-0.05, 0.05)
            out.append(np.stack([centre - half * along, centre + half * along]))
    return out


def _loops(rng):
    """A row of 3-4 tangled loops, like a stretched telephone cord (a prolate cycloid).
    At least 3: one loop is a 0 and two an 8 or "00". At most 4 tall ones, as more would
    merge into a bar once the row is 20 px wide."""
    count = int(rng.integers(3, 5))
    t = np.linspace(0, 2 * np.pi * count, 40 * count)
    radius = rng.uniform(0.8, 1.2)
    x = t / (2 * np.pi) * rng.uniform(1.0, 1.6) - radius * np.sin(t)
    y = radius * np.cos(t) * rng.uniform(1.0, 1.5) + rng.uniform(-0.3, 0.3) * t / (2 * np.pi)
    return [np.stack([x, y], 1)]


SCRIBBLES = {"curve": _random_curve, "hatching": _hatching, "loops": _loops}


# --------------------------------------------------------------------------------------------
# From skeleton to MNIST-style image
# --------------------------------------------------------------------------------------------

def _wobble(rng, count, sigma):
    """Per-point 2D noise, smoothed along the points so a line wobbles instead of jagging."""
    noise = rng.normal(0, sigma, (count + 4, 2))
    kernel = np.array([1, 4, 6, 4, 1]) / 8.0       # sums to 2: keeps the spread of sigma
    return np.stack([np.convolve(noise[:, 0], kernel, "valid"),
                     np.convolve(noise[:, 1], kernel, "valid")], 1)


def jitter(strokes, rng, wobble=0.012):
    """Random rotation, slant, aspect, wobble of every point and shift of every stroke (a hand
    never puts a second stroke exactly where the first one ended). The skeleton is first
    scaled so its longer side is 1, so the wobble is the same fraction of every glyph."""
    angle = np.radians(rng.uniform(-12, 12))
    slant = rng.uniform(-0.3, 0.15)
    aspect = rng.uniform(0.8, 1.2)
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    transform = (rotate @ np.array([[aspect, slant], [0.0, 1.0]])).T
    lengths = [len(stroke) for stroke in strokes]
    points = np.concatenate(strokes)               # all strokes at once: one transform
    low, high = points.min(0), points.max(0)
    unit = (points - (low + high) / 2) / max(float((high - low).max()), 1e-6)
    moved = unit @ transform + _wobble(rng, len(points), wobble)
    moved += np.repeat(rng.normal(0, 0.01, (len(strokes), 2)), lengths, axis=0)
    return np.split(moved, np.cumsum(lengths)[:-1])


def pen_coverage(strokes, rng):
    """Draw unit-box strokes with a random pen on a random canvas: ink coverage in [0, 1]."""
    side = int(rng.integers(CANVAS[0], CANVAS[1] + 1))
    # Ink should cover at most INK_AREA of the glyph's box, or a dense glyph (hatching, a
    # spiral) drawn with a marker turns into a blob: cap the pen by the total stroke length.
    points = np.concatenate(strokes)
    steps = np.sqrt((np.diff(points, axis=0) ** 2).sum(1))
    pen_lifts = np.cumsum([len(s) for s in strokes])[:-1] - 1    # steps between two strokes
    length = float(steps.sum() - steps[pen_lifts].sum())
    widest = min(PEN[1], max(PEN[0], INK_AREA / max(length, 1e-6)))
    pen = max(1, int(round(side * rng.uniform(PEN[0], widest))))
    low, high = points.min(0), points.max(0)
    margin = pen + 2                                  # keeps the pen's round ends inside
    scale = (side - 2 * margin) / max(float((high - low).max()), 1e-6)
    canvas = np.zeros((side, side), np.uint8)
    polylines = [np.round(((s - low) * scale + margin) * (1 << SHIFT)).astype(np.int32)
                 for s in strokes]
    cv2.polylines(canvas, polylines, False, 255, pen, cv2.LINE_AA, SHIFT)
    return canvas.astype(np.float32) / 255


def looks_like_a_one(image):
    """Is the ink a thin, near-vertical bar (narrower than 0.4 of its height)?"""
    rows = np.flatnonzero(image.max(1) > 0.1)
    cols = np.flatnonzero(image.max(0) > 0.1)
    if rows.size == 0:
        return True
    return (cols[-1] - cols[0] + 1) < MIN_WIDTH_RATIO * (rows[-1] - rows[0] + 1)


def _moments(image):
    """Centre of mass (row, col) and the 2x2 second central moments of the ink."""
    m = cv2.moments(image)
    total = max(m["m00"], 1e-12)
    centre = (m["m01"] / total, m["m10"] / total)
    spread = np.array([[m["mu02"], m["mu11"]], [m["mu11"], m["mu20"]]]) / total
    return centre, spread


def off_centre(image):
    """How far (pixels) the centre of mass is from (14, 14). render_digit keeps the whole
    glyph inside the 28x28 image, so a very lopsided glyph cannot be centred; MNIST has none."""
    (row, col), _ = _moments(image)
    return max(abs(row - SIZE // 2), abs(col - SIZE // 2))


def slenderness(image):
    """Spread of the ink across its main axis over the spread along it (second moments):
    about 0.1 for a straight stroke in any direction, 1 for a round or square glyph."""
    _, spread = _moments(image)
    low, high = np.linalg.eigvalsh(spread)
    return float(np.sqrt(max(low, 0.0) / max(high, 1e-12)))


def _render(coverage, reject_slender=False):
    """MNIST-style image of the coverage, or None when it is unusable: no ink, a 1-like bar,
    too lopsided to centre, or (`reject_slender`, for shapes made at random) a lone stroke
    slanted any way, which reads as a 1."""
    try:
        image = render_digit(coverage)
    except ImageError:
        return None
    if looks_like_a_one(image) or off_centre(image) > MAX_OFF_CENTRE:
        return None
    if reject_slender and slenderness(image) < MIN_SLENDERNESS:
        return None
    return image


def _skeleton(kind, rng):
    """A random skeleton of one of the drawn kinds."""
    if kind == "letter":
        return LETTERS[_pick(LETTERS, rng)]
    if kind == "symbol":
        return SYMBOLS[_pick(SYMBOLS, rng)]
    table = DOODLES if kind == "doodle" else SCRIBBLES
    return table[_pick(table, rng)](rng)


def _pick(table, rng):
    names = list(table)
    return names[int(rng.integers(len(names)))]


def _drawn_glyph(kind, rng):
    """One MNIST-style glyph of a drawn kind; redrawn (new shape) until it is usable."""
    while True:
        strokes = jitter(_skeleton(kind, rng), rng)
        image = _render(pen_coverage(strokes, rng), reject_slender=kind == "scribble")
        if image is not None:
            return image


# --------------------------------------------------------------------------------------------
# Partial digits
# --------------------------------------------------------------------------------------------

def _cut_digits(digits, rng):
    """Cut each digit with a random straight line, keeping 30-60% of its ink (soft edge)."""
    count = len(digits)
    angle = rng.uniform(0, 2 * np.pi, count)
    keep = rng.uniform(0.3, 0.6, count)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].reshape(2, 1, -1)
    side = xs * np.cos(angle)[:, None] + ys * np.sin(angle)[:, None]      # (count, 784)
    ink = digits.reshape(count, -1)
    order = np.argsort(side, axis=1)
    mass = np.cumsum(np.take_along_axis(ink, order, 1), axis=1)
    at = (mass < keep[:, None] * mass[:, -1:]).sum(1).clip(0, SIZE * SIZE - 1)
    edge = np.take_along_axis(side, order, 1)[np.arange(count), at]
    mask = np.clip(edge[:, None] - side + 0.5, 0, 1)     # one-pixel ramp: an anti-aliased cut
    return (ink * mask).reshape(count, SIZE, SIZE)


def _sharpened(piece):
    """The piece at 3x size with crisp edges. A piece is a fraction of a digit, so render_digit
    enlarges it; its 28 px anti-aliasing would come out blurrier than any MNIST digit, and the
    network could learn "blurry" instead of "not a digit"."""
    big = cv2.resize(piece, (3 * SIZE, 3 * SIZE), interpolation=cv2.INTER_CUBIC)
    ramp = np.clip((big - 0.25) / 0.5, 0, 1)
    return (ramp * ramp * (3 - 2 * ramp)).astype(np.float32)      # smoothstep


def _without_specks(piece):
    """Remove fragments with under SPECK of the largest fragment's area: the cut leaves the
    tips of strokes that only crossed it, specks no writer would make on purpose."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((piece > 0.1).astype(np.uint8))
    if count <= 2:
        return piece
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= SPECK * areas.max()])
    return piece * keep[labels]


def _partial_glyphs(count, digits, rng):
    """`count` MNIST-style pieces of digits, redrawing pieces that are unusable or a 1."""
    out = []
    for _ in range(PARTIAL_ROUNDS):
        if len(out) == count:
            return out
        chosen = _unit_floats(digits[rng.integers(len(digits), size=count - len(out))])
        for piece in _cut_digits(chosen, rng):
            image = _render(_without_specks(_sharpened(piece)), reject_slender=True)
            if image is not None:
                out.append(image)
    if len(out) < count:     # only digits with (nearly) no ink, or nothing but 1s, get here
        raise ValueError("the digits give no usable pieces: are they blank, or all 1s?")
    return out


# --------------------------------------------------------------------------------------------
# The mix
# --------------------------------------------------------------------------------------------

def _checked(digits):
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.shape[1:] != (SIZE, SIZE) or len(digits) == 0:
        raise ValueError(f"digits must be (M, 28, 28) with M > 0, got {digits.shape}")
    return digits


def _unit_floats(digits):
    """float32 in [0, 1]; uint8 digits (MNIST as loaded) are scaled from 0..255."""
    scale = 255.0 if digits.dtype == np.uint8 else 1.0
    return digits.astype(np.float32) / scale


def draw(n, rng, digits=None):
    """`n` MNIST-style "not a digit" images, (n, 28, 28) float32 in [0, 1], white on black.

    The kinds are mixed by the weights in `KINDS`; `digits` ((M, 28, 28), values in [0, 1])
    are cut into ``partial`` pieces, and without them that kind is left out of the mix.
    `rng` is a `numpy.random.Generator`: the same seed gives the same images.
    """
    if digits is not None:
        digits = _checked(digits)
    kinds = [k for k in KINDS if k != "partial" or digits is not None]
    weights = np.array([KINDS[k] for k in kinds])
    choice = rng.choice(len(kinds), size=n, p=weights / weights.sum())
    out = np.zeros((n, SIZE, SIZE), np.float32)
    for index, kind in enumerate(kinds):
        where = np.flatnonzero(choice == index)
        if kind == "partial":
            images = _partial_glyphs(where.size, digits, rng)
        else:
            images = [_drawn_glyph(kind, rng) for _ in where]
        if where.size:
            out[where] = np.stack(images)
    return out
