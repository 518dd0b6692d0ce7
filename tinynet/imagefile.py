"""Image files -> a safe grayscale array: the first step of reading a user's image.

`load_image` reads any file in `FORMATS` into a 2-D float32 array in [0, 1] (0 black,
1 white), and refuses everything else with an `ImageError` that names the file and says what
is wrong with it. It recognises a format by the file's first bytes, not by its name, reads the
image's size from its header before decoding a single pixel (so a small file cannot ask for a
huge allocation), and turns colour, transparency and 16-bit depth into plain grey.

`to_gray` does the same conversion for arrays a program already holds.

`FORMATS` is the one list of what can be read; `IMAGE_SUFFIXES` (the names a folder listing
picks up) and `UNREADABLE_SUFFIXES` (image formats we recognise by name but cannot decode, so
a folder listing can say so instead of staying silent) are derived from it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError

__all__ = ["FORMATS", "IMAGE_SUFFIXES", "UNREADABLE_SUFFIXES", "MAX_PIXELS", "MAX_FILE_BYTES",
           "load_image", "to_gray", "sniff_format"]

#: Largest image (width x height) decoded at full size. Larger JPEGs are decoded at 1/2, 1/4 or
#: 1/8 size by libjpeg itself (which never holds the full-size image); anything else larger is
#: refused. With at most 4 channels of 16 bits plus the float32 copies made while converting,
#: loading stays under about 20 bytes per pixel, i.e. roughly 0.5 GB.
MAX_PIXELS = 25_000_000
#: Files larger than this are refused without being read.
MAX_FILE_BYTES = 256 * 1024 * 1024

#: What `load_image` reads: format name -> the file-name suffixes it usually goes by.
FORMATS = {
    "PNG": (".png", ".apng"),
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif", ".jif"),
    "BMP": (".bmp", ".dib"),
    "TIFF": (".tif", ".tiff"),
    "GIF": (".gif",),
    "WebP": (".webp",),
    "PNM": (".pgm", ".ppm", ".pbm", ".pnm"),
}
IMAGE_SUFFIXES = frozenset(s for suffixes in FORMATS.values() for s in suffixes)
#: Image formats people save digits in that OpenCV cannot decode: listed so that a folder
#: holding one gets a line saying so, never silence.
UNREADABLE_SUFFIXES = {
    ".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".svg": "SVG", ".svgz": "SVG",
    ".psd": "Photoshop", ".xcf": "GIMP", ".ico": "icon", ".icns": "icon", ".jxl": "JPEG XL",
    ".jp2": "JPEG 2000", ".j2k": "JPEG 2000", ".dng": "raw camera", ".cr2": "raw camera",
    ".nef": "raw camera", ".arw": "raw camera", ".raw": "raw camera", ".pdf": "PDF",
    ".eps": "PostScript", ".tga": "TGA", ".exr": "OpenEXR", ".hdr": "Radiance HDR",
}
_NAMES = " ".join(FORMATS)

# --------------------------------------------------------------------------------------------
# 1. Loading files
# --------------------------------------------------------------------------------------------

def load_image(path) -> np.ndarray:
    """Read an image file into a 2-D float32 array in [0, 1] (0 black, 1 white).

    Reads the formats in `FORMATS` (recognised by their first bytes, not their name) in
    grayscale, colour, with an alpha channel, 8 or 16 bits. Colour is converted to luminance.
    Transparent pixels are composited onto white (so a dark drawing exported from a canvas with
    a transparent background works); if the opaque pixels are themselves light (a white pen on
    a transparent canvas) they are composited onto black instead, so that the drawing is never
    lost. JPEGs are rotated by their EXIF orientation; data after a JPEG's end (phones append
    depth maps and second pictures there) is ignored.

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
    return read_image(path)[0]


def read_image(path, min_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """`load_image`, plus the image's (width, height) as stored in the file.

    With `min_side`, a JPEG is decoded at 1/2, 1/4 or 1/8 of its size (inside the decoder,
    which is several times faster than decoding everything and shrinking afterwards) as long
    as its longer side stays at least `min_side` pixels; the stored size tells the caller by
    how much it was reduced.
    """
    path = Path(path)
    data = _read_bytes(path)
    kind = sniff_format(data)
    if kind is None:
        raise ImageError(f"{path}: not an image file (not {', '.join(FORMATS)})")
    _check_complete(path, kind, data)
    width, height = _header_size(path, kind, data)
    if width <= 0 or height <= 0:
        raise ImageError(f"{path}: image has 0 pixels ({width}x{height})")
    flags = _decode_flags(path, kind, width, height, min_side)
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        decoded = cv2.imdecode(buffer, flags)
    except cv2.error as exc:  # OpenCV raises for some corrupt streams
        raise ImageError(f"{path}: cannot decode {kind} data ({exc.err})") from None
    if decoded is None or decoded.size == 0:
        raise ImageError(f"{path}: cannot decode {kind} data (corrupt or unsupported variant)")
    return _file_pixels_to_gray(path, decoded), (int(width), int(height))


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


def sniff_format(data: bytes) -> str | None:
    """The image format (a key of `FORMATS`) from the file's first bytes, or None."""
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
    if data[:1] == b"P" and data[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6") \
            and data[2:3].isspace():
        return "PNM"
    return None


def _check_complete(path: Path, kind: str, data: bytes) -> None:
    """Refuse files cut short: decoders often return the top part of a truncated image."""
    truncated = False
    if kind == "PNG":
        end = data.rfind(b"IEND")
        truncated = end < 0 or end + 8 > len(data)
    elif kind == "JPEG":
        # The end marker must follow the image's first scan. Phones write more after it
        # (a depth map, a second picture), so it need not be the file's last two bytes; a
        # thumbnail's end marker sits before the scan and does not count.
        scan = _jpeg_scan_start(data)
        truncated = scan < 0 or data.find(b"\xff\xd9", scan) < 0
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
        if kind == "PNM":
            return _pnm_size(data)
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


def _jpeg_scan_start(data: bytes) -> int:
    """Offset of the first start-of-scan marker, or -1 when the markers end before one."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return -1
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif 0xD0 <= marker <= 0xD9 or marker == 0x01:
            pos += 2
        elif marker == 0xDA:
            return pos
        else:
            pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return -1


def _pnm_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PBM/PGM/PPM header ('P5 640 480 255', # comments allowed)."""
    tokens: list[bytes] = []
    for line in data[:4096].split(b"\n"):
        tokens += line.split(b"#")[0].split()
        if len(tokens) >= 3:
            return int(tokens[1]), int(tokens[2])
    raise ValueError("short PNM header")


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


def _decode_flags(path: Path, kind: str, width: int, height: int,
                  min_side: int | None = None) -> int:
    """OpenCV decode flags: keep depth and alpha; shrink big JPEGs inside the decoder."""
    pixels = width * height
    if kind == "JPEG":
        reductions = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                      (2, cv2.IMREAD_REDUCED_GRAYSCALE_2), (1, cv2.IMREAD_GRAYSCALE))
        if min_side:   # the largest reduction that keeps enough detail, if any
            for factor, flag in reductions:
                if max(width, height) >= min_side * factor and pixels <= MAX_PIXELS * factor ** 2:
                    return flag
        for factor, flag in reversed(reductions):
            if pixels <= MAX_PIXELS * factor * factor:
                return flag
    elif pixels <= MAX_PIXELS:
        return cv2.IMREAD_UNCHANGED
    raise ImageError(f"{path}: image of {width}x{height} pixels is too large "
                     f"(limit {MAX_PIXELS} pixels)")


def _file_pixels_to_gray(path: Path, pixels: np.ndarray) -> np.ndarray:
    """Decoded pixels (any depth, 1-4 channels) -> float32 grayscale in [0, 1]."""
    try:
        return to_gray(pixels)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Arrays -> grayscale float
# --------------------------------------------------------------------------------------------

def to_gray(image) -> np.ndarray:
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
    """Pixel values -> float32 in [0, 1], following the rules in `to_gray`."""
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

