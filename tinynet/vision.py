"""Turn a user's image of a digit (or of a whole number) into what an MNIST network expects.

MNIST digits were made in a particular way, and a network trained on them only reads digits
made the same way: a white digit on a black background, values in [0, 1], the digit scaled
(keeping its aspect ratio) so that its longer side is 20 pixels, anti-aliased, and placed in a
28x28 image so that its centre of mass sits at the centre. A photo of a digit on paper, a scan
or a drawing in a paint program differs in every one of those points, so this module repeats
MNIST's recipe on any image, step by step:

1. **Load** (`load_image`). Read the file with OpenCV into a 2-D float32 grayscale array in
   [0, 1]. Colour becomes luminance; a transparent background is composited onto white; 16-bit
   and float images are rescaled. Bad files (missing, empty, truncated, not an image, too big)
   raise `ImageError` naming the file, before any pixel is decoded where possible.
2. **Polarity** (`_ink_map`). Ink is the minority of pixels, so it sits far out in one tail of
   the brightness histogram: if the dark tail is further from the median than the bright
   tail, the digit is dark on light and the image is inverted. From here on ink is bright.
3. **Flatten the background**. Uneven light and shadows are slow changes in brightness. A
   morphological *opening* with a window wider than any pen stroke erases the strokes and keeps
   that slow background; subtracting it leaves the ink on a flat, black background.
4. **Threshold**. Otsu's method picks the level that best separates ink from background in
   the flattened image (never below a fraction of the brightest ink, so paper texture and JPEG
   noise stay out). An image whose ink is too faint is blank: "no digit found".
5. **Keep the digit's ink**. Connected components of the thresholded image: the largest one
   (preferring components that do not touch the image border, which are often frames or paper
   edges) is the digit, plus nearby pieces of a reasonable size (the detached bar of a 5);
   specks are dropped. The soft (grey) ink values under those components are kept, so edges
   stay anti-aliased as in MNIST.
6. **Crop, fix the stroke width, scale** (`_render`). The digit is cropped to its bounding box
   and resampled to a working size. Thin pen strokes (a one-pixel paint-program pen) are
   thickened with a grey dilation toward MNIST's typical width (about 2.4 px once the digit is
   20 px tall); very thick marker strokes are thinned a little. Then it is shrunk so the longer
   side is 20 px with area averaging (`INTER_AREA`), which anti-aliases like MNIST.
7. **Centre by mass**. The 20 px digit is pasted into a black 28x28 image shifted so that its
   centre of mass lands on pixel (14, 14).

`split_digits` does steps 2-5 on an image of a number, groups ink components into digits
(pieces that overlap strongly in x belong to one digit; a blob much wider than tall is cut at
the emptiest column), and renders each group with steps 6-7, left to right.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError

__all__ = ["load_image", "to_mnist", "split_digits", "MAX_PIXELS", "MAX_FILE_BYTES"]

#: Largest image (width x height) decoded at full size. Larger JPEGs are decoded at 1/2, 1/4 or
#: 1/8 size by libjpeg itself (which never holds the full-size image); anything else larger is
#: refused. With at most 4 channels of 16 bits plus the float32 copies made while converting,
#: loading stays under about 20 bytes per pixel, i.e. roughly 0.5 GB.
MAX_PIXELS = 25_000_000
#: Files larger than this are refused without being read.
MAX_FILE_BYTES = 256 * 1024 * 1024

MNIST_SIZE = 28          # side of the output image
MNIST_BOX = 20           # the longer side of the digit inside it
ANALYSIS_SIZE = 640      # images are shrunk to at most this many pixels a side for analysis
WORK_SIZE = 80           # the digit's longer side while its strokes are measured and fixed
STROKE_TARGET = 2.4      # MNIST's median stroke width, in pixels of the 20 px digit
STROKE_THIN = 1.8        # thinner than this gets thickened to STROKE_TARGET
STROKE_THICK = 4.0       # thicker than this gets thinned to STROKE_THICK_TARGET
STROKE_THICK_TARGET = 3.2
MIN_CONTRAST = 0.08      # ink fainter than this (on a 0..1 scale) is not ink
SPLIT_ASPECT = 1.15      # a group of ink wider than this times its height is cut in two


# --------------------------------------------------------------------------------------------
# 1. Loading files
# --------------------------------------------------------------------------------------------

def load_image(path) -> np.ndarray:
    """Read an image file into a 2-D float32 array in [0, 1] (0 black, 1 white).

    Reads PNG, JPEG, BMP, TIFF, GIF and WebP (recognised by their first bytes, not their
    name) in grayscale, colour, with an alpha channel, 8 or 16 bits. Colour is converted to
    luminance. Transparent pixels are composited onto white (so a dark drawing exported from
    a canvas with a transparent background works); if the opaque pixels are themselves light
    (a white pen on a transparent canvas) they are composited onto black instead, so that the
    drawing is never lost. JPEGs are rotated by their EXIF orientation.

    Animated or multi-page files (APNG, GIF, WebP, multi-page TIFF): the FIRST frame/page is
    read; the others are ignored.

    Memory: image dimensions are read from the file header before decoding. An image of more
    than `MAX_PIXELS` (25 million) pixels is decoded at a reduced size if it is a JPEG (1/2, 1/4
    or 1/8, done inside the JPEG decoder) and refused otherwise, so loading never needs more
    than about 0.5 GB. Files over `MAX_FILE_BYTES` are refused unread.

    Raises `ImageError` naming the file and the reason for: a missing path, a directory, an
    empty file, a file that is not a recognised image, a truncated or corrupt file, an image
    of 0 pixels, and an image too large to decode.
    """
    path = Path(path)
    data = _read_bytes(path)
    kind = _sniff_format(data)
    if kind is None:
        raise ImageError(f"{path}: not an image file (not PNG, JPEG, BMP, TIFF, GIF or WebP)")
    _check_complete(path, kind, data)
    width, height = _header_size(path, kind, data)
    if width <= 0 or height <= 0:
        raise ImageError(f"{path}: image has 0 pixels ({width}x{height})")
    flags = _decode_flags(path, kind, width, height)
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        decoded = cv2.imdecode(buffer, flags)
    except cv2.error as exc:  # OpenCV raises for some corrupt streams
        raise ImageError(f"{path}: cannot decode {kind} data ({exc.err})") from None
    if decoded is None or decoded.size == 0:
        raise ImageError(f"{path}: cannot decode {kind} data (corrupt or unsupported variant)")
    return _file_pixels_to_gray(path, decoded)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or an ImageError for paths that are not readable files."""
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{path}: file of {size} bytes is larger than the "
                         f"{MAX_FILE_BYTES} byte limit")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file ({exc.strerror})") from None


def _sniff_format(data: bytes) -> str | None:
    """The image format from the file's magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None


def _check_complete(path: Path, kind: str, data: bytes) -> None:
    """Refuse files cut short: decoders often return the top part of a truncated image."""
    truncated = False
    if kind == "PNG":
        end = data.rfind(b"IEND")
        truncated = end < 0 or end + 8 > len(data)
    elif kind == "JPEG":
        truncated = not data.rstrip(b"\x00\r\n \t").endswith(b"\xff\xd9")
    elif kind == "GIF":
        truncated = not data.rstrip(b"\x00").endswith(b"\x3b")
    elif kind == "BMP" and len(data) >= 14:
        stated = struct.unpack_from("<I", data, 2)[0]
        truncated = len(data) < 26 or (0 < stated <= MAX_FILE_BYTES and len(data) < stated)
    elif kind == "WebP":
        truncated = len(data) < 8 + struct.unpack_from("<I", data, 4)[0]
    if truncated:
        raise ImageError(f"{path}: truncated {kind} file (its end marker is missing)")


def _header_size(path: Path, kind: str, data: bytes) -> tuple[int, int]:
    """(width, height) read from the header, without decoding any pixels."""
    try:
        if kind == "PNG":
            return struct.unpack_from(">II", data, 16)
        if kind == "JPEG":
            return _jpeg_size(data)
        if kind == "BMP":
            if struct.unpack_from("<I", data, 14)[0] == 12:       # old OS/2 header
                return struct.unpack_from("<HH", data, 18)
            width, height = struct.unpack_from("<ii", data, 18)
            return width, abs(height)
        if kind == "GIF":
            return struct.unpack_from("<HH", data, 6)
        if kind == "TIFF":
            return _tiff_size(data)
        return _webp_size(data)
    except (struct.error, ValueError):
        raise ImageError(f"{path}: corrupt {kind} header") from None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG markers up to the first start-of-frame, which holds the size."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("bad marker")
        marker = data[pos + 1]
        if marker == 0xFF:                       # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:   # markers without a length
            pos += 2
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        if marker == 0xDA:
            break
        pos += 2 + length
    raise ValueError("no start-of-frame marker")


def _tiff_size(data: bytes) -> tuple[int, int]:
    """ImageWidth (tag 256) and ImageLength (tag 257) of the first TIFF directory."""
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack_from(order + "H", data, 2)[0] == 43
    if big:
        offset = struct.unpack_from(order + "Q", data, 8)[0]
        count = struct.unpack_from(order + "Q", data, offset)[0]
        entry, first, size = 20, offset + 8, 8
    else:
        offset = struct.unpack_from(order + "I", data, 4)[0]
        count = struct.unpack_from(order + "H", data, offset)[0]
        entry, first, size = 12, offset + 2, 4
    found = {}
    for i in range(min(count, 4096)):
        at = first + i * entry
        tag, typ = struct.unpack_from(order + "HH", data, at)
        if tag in (256, 257):
            value_at = at + 4 + size
            fmt = {3: "H", 4: "I", 16: "Q"}.get(typ)
            if fmt is None:
                raise ValueError("bad size tag type")
            found[tag] = struct.unpack_from(order + fmt, data, value_at)[0]
    if 256 not in found or 257 not in found:
        raise ValueError("no size tags")
    return found[256], found[257]


def _webp_size(data: bytes) -> tuple[int, int]:
    """Canvas size from a WebP file's first chunk (VP8, VP8L or VP8X)."""
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        bits = struct.unpack_from("<I", data, 21)[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    raise ValueError("unknown WebP chunk")


def _decode_flags(path: Path, kind: str, width: int, height: int) -> int:
    """OpenCV decode flags: keep depth and alpha; shrink big JPEGs inside the decoder."""
    pixels = width * height
    if kind == "JPEG":
        for factor, flag in ((1, cv2.IMREAD_GRAYSCALE), (2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
                             (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                             (8, cv2.IMREAD_REDUCED_GRAYSCALE_8)):
            if pixels <= MAX_PIXELS * factor * factor:
                return flag
    elif pixels <= MAX_PIXELS:
        return cv2.IMREAD_UNCHANGED
    raise ImageError(f"{path}: image of {width}x{height} pixels is too large "
                     f"(limit {MAX_PIXELS} pixels)")


def _file_pixels_to_gray(path: Path, pixels: np.ndarray) -> np.ndarray:
    """Decoded pixels (any depth, 1-4 channels) -> float32 grayscale in [0, 1]."""
    try:
        return _to_gray(pixels)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Arrays -> grayscale float
# --------------------------------------------------------------------------------------------

def _to_gray(image) -> np.ndarray:
    """Any 2-D array, or 3-D with 1-4 channels last (OpenCV's BGR order), -> float32 in [0, 1].

    uint8 is divided by 255, uint16 by 65535, bool becomes 0/1; other integers and floats are
    used as they are when within [0, 1], divided by 255 or 65535 when they fit those ranges,
    and stretched from their minimum to their maximum otherwise. Raises ImageError (without a
    file name) for anything else.
    """
    array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise ImageError(f"unsupported pixel type {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ImageError(f"unsupported image shape {array.shape} "
                         "(expected height x width, with 1, 2, 3 or 4 channels last)")
    if array.size == 0:
        raise ImageError(f"image has 0 pixels (shape {array.shape})")
    values = _scale_to_unit(array)
    if values.ndim == 2:
        return values
    if values.shape[2] == 3:
        return np.ascontiguousarray(cv2.cvtColor(values, cv2.COLOR_BGR2GRAY))
    if values.shape[2] == 2:
        gray, alpha = values[:, :, 0], values[:, :, 1]
    else:
        gray = cv2.cvtColor(np.ascontiguousarray(values[:, :, :3]), cv2.COLOR_BGR2GRAY)
        alpha = values[:, :, 3]
    return _composite(gray, alpha)


def _scale_to_unit(array: np.ndarray) -> np.ndarray:
    """Pixel values -> float32 in [0, 1], following the rules in `_to_gray`."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535)
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageError("image contains NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= 1:
        return values.astype(np.float32)
    for full_scale in (255.0, 65535.0):
        if low >= 0 and high <= full_scale:
            return (values / full_scale).astype(np.float32)
    span = high / 2 - low / 2                    # halves: no overflow near the float64 limit
    if span <= 0:
        return np.zeros(values.shape, np.float32)
    return np.clip((values / 2 - low / 2) / span, 0, 1).astype(np.float32)


def _composite(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto white, or onto black when the opaque pixels are light (white pen)."""
    opaque = alpha > 0.5
    light_ink = opaque.any() and (~opaque).any() and float(gray[opaque].mean()) > 0.5
    backdrop = 0.0 if light_ink else 1.0
    out = gray * alpha + np.float32(backdrop) * (1 - alpha)
    return np.clip(out, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# 2-5. Finding the ink
# --------------------------------------------------------------------------------------------

def _shrink_for_analysis(gray: np.ndarray) -> np.ndarray:
    """Downscale (area averaging) so neither side exceeds ANALYSIS_SIZE."""
    height, width = gray.shape
    scale = ANALYSIS_SIZE / max(height, width)
    if scale >= 1:
        return gray
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _coarse_background(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness everywhere: a wide median filter on a small copy, scaled back.

    A median ignores ink of either polarity as long as ink covers under half of the window,
    and a window of 0.6 x the image side is wide enough for that in any digit image.
    """
    height, width = gray.shape
    scale = min(1.0, 96 / max(height, width))
    small = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    size = max(3, int(0.6 * max(small.shape)) | 1)
    as_bytes = np.round(small * 255).astype(np.uint8)
    median = cv2.medianBlur(as_bytes, size).astype(np.float32) / 255
    return cv2.resize(median, (width, height), interpolation=cv2.INTER_LINEAR)


def _flat_paper(gray: np.ndarray) -> float | None:
    """The background level if the image border is uniform (a digital drawing), else None."""
    ring = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    low, high = np.percentile(ring, [5, 95])
    return float(np.median(ring)) if high - low < 0.1 else None


def _ink_is_dark(gray: np.ndarray, paper) -> bool:
    """Is the ink darker than the paper? Ink is what departs furthest from the paper colour,
    so compare how far the darkest and the brightest pixels depart from the background."""
    darkest, brightest = np.percentile(gray - paper, [0.2, 99.8])
    return bool(-darkest > brightest)


def _flatten_background(ink: np.ndarray, relative: bool) -> np.ndarray:
    """Remove the slowly varying background (light gradients, shadows) estimated by opening.

    An opening (minimum filter, then maximum filter) with a window wider than any stroke
    removes the bright strokes and keeps everything broader, including the sharp edge of a
    shadow, which a blur would smear. For dark ink on paper (`relative`, `ink` = 1 - photo)
    light multiplies the paper's reflectance, so the ink's depth is divided by the local
    paper brightness: a stroke in the shadow counts as much as one in full light.
    """
    height, width = ink.shape
    if max(height, width) > 100:   # photos: tame paper texture and sensor noise first
        ink = cv2.GaussianBlur(ink, (0, 0), 1.0)
    size = max(7, max(height, width) // 4) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    background = cv2.morphologyEx(ink, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
    smooth = max(3, size // 8) | 1
    background = cv2.blur(background, (smooth, smooth), borderType=cv2.BORDER_REPLICATE)
    depth = ink - np.minimum(background, ink)
    if relative:
        depth = depth / np.maximum(1 - background, 0.05)
    return np.clip(depth, 0, 1).astype(np.float32)


def _ink_map(image) -> tuple[np.ndarray, np.ndarray]:
    """(soft ink in [0, 1] with a black background, binary ink mask) at analysis size."""
    gray = _shrink_for_analysis(_to_gray(image))
    paper = _flat_paper(gray)
    if paper is not None:      # uniform background: subtract it, no flattening needed
        if _ink_is_dark(gray, paper):
            gray, paper = 1 - gray, 1 - paper
        ink = np.clip(gray - paper, 0, 1)
    else:                      # photos and scans: flatten light gradients and shadows
        dark = _ink_is_dark(gray, _coarse_background(gray))
        ink = _flatten_background(1 - gray if dark else gray, relative=dark)
    peak = float(np.percentile(ink, 99.8)) if ink.size > 500 else float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageError("no digit found (the image is blank or has no contrast)")
    as_bytes = np.round(ink * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(as_bytes, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = max(otsu / 255.0, 0.3 * peak, MIN_CONTRAST)
    mask = (ink > level).astype(np.uint8)
    return _normalise_ink(ink, mask, level), mask


def _normalise_ink(ink: np.ndarray, mask: np.ndarray, level: float) -> np.ndarray:
    """Stretch so the ink's core is 1 and the background noise floor is 0."""
    near = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0
    far = ink[~near]
    floor = min(2.0 * float(np.percentile(far, 95)), 0.5 * level) if far.size else 0.0
    top = float(np.percentile(ink[mask > 0], 90)) if mask.any() else 1.0
    return np.clip((ink - floor) / max(top - floor, 1e-6), 0, 1).astype(np.float32)


def _components(mask: np.ndarray) -> tuple[list[dict], np.ndarray]:
    """8-connected components of the mask as dicts with label, area, bounding box, border."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    height, width = mask.shape
    parts = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        border = x == 0 or y == 0 or x + w == width or y + h == height
        parts.append(dict(label=label, area=area, x0=x, x1=x + w, y0=y, y1=y + h,
                          border=border))
    return parts, labels


def _near(part: dict, main: dict, margin: float = 0.25) -> bool:
    """Does part's box touch main's box grown by `margin` of main's size?"""
    dx = margin * (main["x1"] - main["x0"]) + 1
    dy = margin * (main["y1"] - main["y0"]) + 1
    return (part["x0"] < main["x1"] + dx and part["x1"] > main["x0"] - dx
            and part["y0"] < main["y1"] + dy and part["y1"] > main["y0"] - dy)


def _select_digit(parts: list[dict]) -> list[dict]:
    """The digit's components: the main one and sizeable pieces next to it."""
    main = max(parts, key=lambda p: p["area"] * (0.3 if p["border"] else 1.0))
    return [p for p in parts
            if p is main or (p["area"] >= 0.05 * main["area"] and _near(p, main))]


def _keep(soft: np.ndarray, labels: np.ndarray, chosen: list[dict]) -> np.ndarray:
    """Soft ink restricted to the chosen components (grown by a pixel for soft edges)."""
    keep = np.isin(labels, [p["label"] for p in chosen]).astype(np.uint8)
    keep = cv2.dilate(keep, np.ones((3, 3), np.uint8))
    return soft * keep


# --------------------------------------------------------------------------------------------
# 6-7. Rendering one digit MNIST-style
# --------------------------------------------------------------------------------------------

def _crop(ink: np.ndarray) -> np.ndarray:
    """Crop to the bounding box of the nonzero pixels."""
    ys, xs = np.nonzero(ink > 0.02)
    if ys.size == 0:
        raise ImageError("no digit found")
    return ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _resize_longer_side(ink: np.ndarray, side: int) -> np.ndarray:
    """Resize keeping the aspect ratio; area averaging when shrinking, linear when growing."""
    height, width = ink.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(ink, size, interpolation=method)


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: 2 x area / perimeter of the ink above half its peak."""
    mask = (ink > 0.5 * max(float(ink.max()), 1e-6)).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(mask.sum()) / max(perimeter, 1.0)


def _fix_stroke_width(work: np.ndarray) -> np.ndarray:
    """Grey-dilate thin strokes (grey-erode very thick ones) toward MNIST's stroke width."""
    per_output_pixel = WORK_SIZE / MNIST_BOX
    width = stroke_width(work) / per_output_pixel
    if width < STROKE_THIN:
        grow = round((STROKE_TARGET - width) * per_output_pixel)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow + 1, grow + 1))
        padded = cv2.copyMakeBorder(work, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0)
        return _crop(cv2.dilate(padded, kernel))
    if width > STROKE_THICK:
        shrink = round((width - STROKE_THICK_TARGET) * per_output_pixel)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (shrink + 1, shrink + 1))
        thinner = cv2.erode(work, kernel)
        return _crop(thinner) if thinner.max() > 0.5 else work
    return work


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste into 28x28 so the centre of mass lands on pixel (14, 14), keeping it all inside.

    Pixel indices are the coordinates (as in MNIST, whose digits average a centre of mass of
    row 14.0, column 14.0). The shift is a whole number of pixels, so nothing is resampled.
    """
    height, width = digit.shape
    total = float(digit.sum())
    row_mass = float((digit.sum(axis=1) * np.arange(height)).sum()) / total
    col_mass = float((digit.sum(axis=0) * np.arange(width)).sum()) / total
    centre = MNIST_SIZE // 2
    top = int(np.clip(round(centre - row_mass), 0, MNIST_SIZE - height))
    left = int(np.clip(round(centre - col_mass), 0, MNIST_SIZE - width))
    out = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    out[top:top + height, left:left + width] = digit
    return out


def _render(ink: np.ndarray) -> np.ndarray:
    """Soft ink of one digit (black background) -> MNIST-style 28x28 float32 in [0, 1]."""
    work = _resize_longer_side(_crop(ink), WORK_SIZE)
    work = _fix_stroke_width(work)
    digit = _resize_longer_side(work, MNIST_BOX)
    peak = float(digit.max())
    if peak <= 0:
        raise ImageError("no digit found")
    digit = np.clip(digit / peak, 0, 1).astype(np.float32)
    return _centre_by_mass(digit)


# --------------------------------------------------------------------------------------------
# The public functions
# --------------------------------------------------------------------------------------------

def to_mnist(image) -> np.ndarray:
    """One digit in any image -> (28, 28) float32 in [0, 1], white on black, MNIST-style.

    `image` is an array (2-D grayscale, or 3-D with 1-4 channels last in OpenCV's B, G, R, A
    order; any integer, bool or float dtype, see `_to_gray` for the scaling) or a path, which
    is read with `load_image`. Either polarity works. Raises ImageError "no digit found" for a
    blank image, and ImageError for arrays it cannot interpret (wrong shape or dtype, NaN).
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    soft, mask = _ink_map(image)
    parts, labels = _components(mask)
    if not parts:
        raise ImageError("no digit found")
    return _render(_keep(soft, labels, _select_digit(parts)))


def split_digits(image) -> list[np.ndarray]:
    """The digits of a written number, left to right, each as to_mnist would make it.

    Ink components are grouped into digits: components overlapping by more than half of the
    narrower one's width in x are one digit (a broken stroke); groups much wider than tall
    (touching digits) are cut at the column with the least ink. Specks are dropped. Raises
    ImageError "no digit found" for a blank image.
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    soft, mask = _ink_map(image)
    parts, labels = _components(mask)
    groups = _drop_small_groups(_group_by_columns(_drop_specks(parts, mask.shape)))
    if not groups:
        raise ImageError("no digit found")
    digits = []
    for group in groups:
        ink = _keep(soft, labels, group["parts"])
        for x0, x1 in _split_wide(ink, group):
            piece = np.zeros_like(ink)
            piece[:, x0:x1] = ink[:, x0:x1]
            if piece.max() > 0:
                digits.append(_render(piece))
    return digits


def _drop_specks(parts: list[dict], shape: tuple[int, int]) -> list[dict]:
    """Drop dust (under 2% of the largest component) and lines along the border."""
    height, width = shape
    parts = [p for p in parts if not (p["border"] and p["x1"] - p["x0"] > 0.9 * width
                                      and p["y1"] - p["y0"] < 0.2 * height)]
    if not parts:
        return []
    largest = max(p["area"] for p in parts)
    return [p for p in parts if p["area"] >= max(2, 0.02 * largest)]


def _group_by_columns(parts: list[dict]) -> list[dict]:
    """Merge components that overlap strongly in x (pieces of one digit), left to right."""
    groups: list[dict] = []
    for part in sorted(parts, key=lambda p: p["x0"]):
        for group in groups:
            overlap = min(group["x1"], part["x1"]) - max(group["x0"], part["x0"])
            narrower = min(group["x1"] - group["x0"], part["x1"] - part["x0"])
            if overlap > 0.5 * narrower:
                group["parts"].append(part)
                for key, pick in (("x0", min), ("y0", min), ("x1", max), ("y1", max)):
                    group[key] = pick(group[key], part[key])
                group["area"] += part["area"]
                break
        else:
            groups.append(dict(parts=[part], area=part["area"], x0=part["x0"], x1=part["x1"],
                               y0=part["y0"], y1=part["y1"]))
    return sorted(groups, key=lambda g: g["x0"])


def _drop_small_groups(groups: list[dict]) -> list[dict]:
    """Drop groups much shorter and smaller than the tallest (dots, dust, underlines)."""
    if not groups:
        return []
    tallest = max(g["y1"] - g["y0"] for g in groups)
    biggest = max(g["area"] for g in groups)
    return [g for g in groups
            if g["y1"] - g["y0"] >= 0.4 * tallest or g["area"] >= 0.25 * biggest]


def _split_wide(ink: np.ndarray, group: dict) -> list[tuple[int, int]]:
    """Column ranges of the digits in a group; wide groups are cut at the emptiest column."""
    height = group["y1"] - group["y0"]
    spans, done = [(group["x0"], group["x1"])], []
    while spans:
        x0, x1 = spans.pop()
        if x1 - x0 <= SPLIT_ASPECT * height or x1 - x0 < 6:
            done.append((x0, x1))
            continue
        columns = ink[:, x0:x1].sum(axis=0)
        inner = slice((x1 - x0) // 4, (x1 - x0) - (x1 - x0) // 4)
        cut = x0 + inner.start + int(np.argmin(columns[inner]))
        spans += [(x0, cut), (cut, x1)]
    return sorted(done)
