"""Image size from the file header, without decoding pixels; whole-file integrity checks before decoding.

Ingest checks that every person box overlaps its image; for H36M that is ~300k frames, so decoding each with
OpenCV (the only image library in our dependencies) would dominate the stage. JPEG and PNG headers are tiny
and stable formats, so we read them ourselves and fall back to ``cv2.imread`` for anything else.

OpenCV decodes a truncated JPEG without an error (libjpeg warns "Premature end of JPEG file" on stderr and
fills the rest grey) and a PNG with damaged chunks too, so ``image_problem`` checks the file's structure
first: a JPEG must reach its end-of-image marker (EOI) through its segments and entropy-coded scans; a PNG
must reach its IEND chunk with every chunk's CRC-32 intact. ``read_image`` is the one reader for pixels
that must be whole (render's crops): structure, then ``cv2.imdecode``.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI, JPEG_EOI, JPEG_SOS = 0xD8, 0xD9, 0xDA
# inside a scan 0xFF is followed by 0x00 (stuffing), a restart marker 0xD0-0xD7 or more 0xFF fill bytes;
# any other byte after 0xFF is the marker that ends the scan
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

# JPEG start-of-frame markers that carry the image size (baseline, progressive, lossless, ...).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(f) -> tuple[int, int] | None:
    f.seek(2)
    while True:
        byte = f.read(1)
        while byte and byte != b"\xff":
            byte = f.read(1)
        while byte == b"\xff":
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length field
            continue
        (length,) = struct.unpack(">H", f.read(2))
        if marker in _SOF:
            h, w = struct.unpack(">xHH", f.read(5))
            return w, h
        f.seek(length - 2, 1)


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of the image at ``path`` in pixels, or None if missing/unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return w, h
            if head[:2] == b"\xff\xd8":
                size = _jpeg_size(f)
                if size is not None:
                    return size
    except (OSError, struct.error):
        return None
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if img is None else (img.shape[1], img.shape[0])


class PNGDamaged(ValueError):
    """A PNG that is not whole: truncated inside a chunk, a chunk failing its CRC, or no IEND chunk."""


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(kind, payload) of each chunk of ``data`` (starting with the PNG signature), up to and including
    IEND, each checked for length and CRC; :class:`PNGDamaged` saying where otherwise."""
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise PNGDamaged(f"PNG truncated inside its {kind.decode('latin-1')!r} chunk")
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            raise PNGDamaged(f"PNG chunk {kind.decode('latin-1')!r} at byte {pos} fails its CRC (damaged)")
        yield kind, data[pos + 8 : end - 4]
        if kind == b"IEND":
            return
        pos = end
    raise PNGDamaged("PNG truncated (no IEND chunk)")


def _png_problem(data: bytes) -> str | None:
    """Why ``data`` (starting with the PNG signature) is not a whole PNG, or None."""
    try:
        for _ in png_chunks(data):
            pass
    except PNGDamaged as err:
        return str(err)
    return None


def _jpeg_problem(data: bytes) -> str | None:
    """Why ``data`` (starting with SOI) is not a whole JPEG, or None: walks the marker segments and skips
    each scan's entropy-coded data (see _SCAN_END) up to EOI."""
    pos, size, scans = 2, len(data), 0
    while True:
        while pos < size and data[pos] != 0xFF:  # tolerated junk between segments
            pos += 1
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            return "JPEG truncated (no end-of-image marker)"
        marker = data[pos]
        pos += 1
        if marker == JPEG_EOI:
            return None if scans else "JPEG ends before any image data (no scan)"
        if marker == JPEG_SOI or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        if pos + 2 > size:
            return "JPEG truncated inside a marker segment"
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > size:
            return f"JPEG truncated inside segment 0x{marker:02X}"
        pos += length
        if marker != JPEG_SOS:
            continue
        scans += 1
        found = _SCAN_END.search(data, pos)  # the entropy-coded data ends at the next real marker
        if found is None:
            return "JPEG truncated inside its image data (premature end of file)"
        pos = found.start()


def image_problem(data: bytes) -> str | None:
    """Why the bytes of an image file are not one whole JPEG or PNG (truncated, damaged chunk), or None.
    Other formats are left to the decoder."""
    if data[:8] == PNG_SIGNATURE:
        return _png_problem(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_problem(data)
    return None


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR pixels of the image at ``path``, decoded whole; ValueError with the reason
    ('file not found', truncated, damaged, 'cannot be decoded') otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except OSError as err:
        raise ValueError(f"cannot be read ({err.strerror or err})") from None
    problem = image_problem(data)
    if problem is not None:
        raise ValueError(problem)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("cannot be decoded")
    return image
