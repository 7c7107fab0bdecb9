"""Image size from the file header, without decoding pixels.

Ingest checks that every person box overlaps its image; for H36M that is ~300k frames, so decoding each with
OpenCV (the only image library in our dependencies) would dominate the stage. JPEG and PNG headers are tiny
and stable formats, so we read them ourselves and fall back to ``cv2.imread`` for anything else.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2

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
