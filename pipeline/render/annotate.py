"""Labels for pictures people read: titles, column headers, colour bars, part legends and boxes.

Every function takes and returns (H, W, 3) uint8 RGB arrays; text is OpenCV's Hershey font (no font files),
drawn white with a dark outline so that it reads on any background. Pictures are composed by stacking
strips: ``np.concatenate([header_row(...), panel, part_legend(...)], axis=0)``.
"""

from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
STRIP_BACKGROUND = (32, 32, 32)  # dark grey behind headers, legends and colour-bar labels
TEXT = (255, 255, 255)
OUTLINE = (0, 0, 0)


def font_scale(height_px: float) -> float:
    """OpenCV font scale whose capital letters are about `height_px` pixels tall (Hershey simplex: 22 px at 1)."""
    return max(height_px, 6.0) / 22.0


def put_text(
    image: np.ndarray,
    text: str,
    origin: tuple[int, int],
    height_px: float = 12.0,
    colour=TEXT,
    outline=OUTLINE,
) -> np.ndarray:
    """Draw `text` in place with its baseline's left end at `origin` (x, y pixels), in `colour` with an
    `outline` (None: none, e.g. dark text on a white chart); returns image."""
    scale = font_scale(height_px)
    thickness = max(1, round(scale * 1.5))
    x, y = int(origin[0]), int(origin[1])
    shifts = ((-1, -1), (-1, 1), (1, -1), (1, 1), (0, 2), (2, 0), (0, -2), (-2, 0)) if outline else ()
    for dx, dy in shifts:  # the outline is shifted copies: a thicker stroke would widen the letters' advance
        cv2.putText(image, text, (x + dx, y + dy), FONT, scale, outline, thickness, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), FONT, scale, colour, thickness, cv2.LINE_AA)
    return image


def text_width(text: str, height_px: float = 12.0) -> int:
    """Width in pixels of `text` drawn by :func:`put_text` at `height_px`."""
    scale = font_scale(height_px)
    (width, _), _ = cv2.getTextSize(text, FONT, scale, max(1, round(scale * 1.5)))
    return int(width) + 2  # the outline


def fit_height(text: str, width: int, height_px: float) -> float:
    """The largest text height <= `height_px` at which `text` fits in `width` pixels (with a small margin)."""
    used = text_width(text, height_px)
    return height_px if used <= width - 6 else max(6.0, height_px * (width - 6) / max(used, 1))


def strip(height: int, width: int) -> np.ndarray:
    """An empty (height, width, 3) label strip."""
    return np.full((height, width, 3), STRIP_BACKGROUND, np.uint8)


def header_row(titles: list[str], tile_width: int, height: int = 28) -> np.ndarray:
    """(height, len(titles) * tile_width, 3): each title centred over its column."""
    out = strip(height, tile_width * len(titles))
    for i, title in enumerate(titles):
        size = fit_height(title, tile_width, 0.5 * height)
        x = i * tile_width + (tile_width - text_width(title, size)) // 2
        put_text(out, title, (x, int(height * 0.7)), size)
    return out


def row_label(tile: np.ndarray, text: str, height_px: float = 12.0) -> np.ndarray:
    """A copy of `tile` with `text` in its top-left corner."""
    out = np.ascontiguousarray(tile).copy()
    size = fit_height(text, out.shape[1], height_px)
    return put_text(out, text, (4, int(size) + 5), size)


def colour_ramp(values: np.ndarray, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """(...) floats in [0, 1] -> (..., 3) uint8 RGB of an OpenCV colour map (out-of-range values clipped)."""
    codes = np.clip(np.round(np.asarray(values, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    flat = cv2.applyColorMap(codes.reshape(-1, 1), colormap)[:, 0, ::-1]
    return flat.reshape(*codes.shape, 3)


def colour_bar(
    width: int,
    label: str,
    low: float = 0.0,
    high: float = 1.0,
    colormap: int = cv2.COLORMAP_JET,
    height: int = 30,
) -> np.ndarray:
    """(height, width, 3): a horizontal colour ramp from `low` (left) to `high` (right) with its end values
    and `label` written under it, for placing under the column it explains."""
    out = strip(height, width)
    margin, bar_height = 6, max(4, height // 3)
    ramp = colour_ramp(np.linspace(0.0, 1.0, width - 2 * margin), colormap)
    out[3 : 3 + bar_height, margin : width - margin] = ramp[None]
    size = min(0.4 * height, 11.0)
    y = height - 4
    lo, hi = f"{low:g}", f"{high:g}"
    put_text(out, lo, (margin, y), size)
    put_text(out, hi, (width - margin - text_width(hi, size), y), size)
    middle = fit_height(label, width - 2 * (text_width(hi, size) + margin + 4), size)
    put_text(out, label, ((width - text_width(label, middle)) // 2, y), middle)
    return out


def part_legend(
    names: list[str], colours: np.ndarray, width: int, columns: int | None = None, row_height: int = 16
) -> np.ndarray:
    """(rows * row_height + 4, width, 3): a swatch and the name of each part, `columns` per row.

    `names[i]` goes with `colours[i]` ((N, 3) uint8 RGB or floats in [0, 1])."""
    colours = np.asarray(colours)
    if colours.dtype != np.uint8:
        colours = np.clip(np.round(colours * 255.0), 0, 255).astype(np.uint8)
    columns = columns or max(1, width // 120)
    rows = -(-len(names) // columns)
    out = strip(rows * row_height + 4, width)
    cell = width // columns
    size = 0.6 * row_height
    for i, (name, colour) in enumerate(zip(names, colours, strict=True)):
        r, c = divmod(i, columns)
        x, y = c * cell + 4, r * row_height + 2
        side = row_height - 4
        cv2.rectangle(out, (x, y + 2), (x + side, y + 2 + side), tuple(int(v) for v in colour), cv2.FILLED)
        text = name.replace("_", " ")
        put_text(out, text, (x + side + 4, y + row_height - 4), fit_height(text, cell - side - 8, size))
    return out


def draw_box(
    image: np.ndarray, box: tuple[float, float, float, float], colour=(80, 255, 80), label: str | None = None
) -> np.ndarray:
    """A copy of `image` with the [x, y, w, h] box (pixel centres at integers) drawn, optionally labelled."""
    out = np.ascontiguousarray(image).copy()
    x, y, w, h = box
    thickness = max(2, round(max(out.shape[:2]) / 300))
    p0, p1 = (round(x), round(y)), (round(x + w), round(y + h))
    cv2.rectangle(out, p0, p1, colour, thickness, cv2.LINE_AA)
    if label:
        size = max(12.0, max(out.shape[:2]) / 40)
        put_text(out, label, (p0[0] + thickness + 2, max(p0[1], 0) + int(size) + thickness + 2), size)
    return out


def stack_rows(*parts: np.ndarray) -> np.ndarray:
    """Stack strips and panels vertically, padding narrower ones on the right with the strip colour."""
    width = max(p.shape[1] for p in parts)
    padded = [
        p if p.shape[1] == width else np.concatenate([p, strip(p.shape[0], width - p.shape[1])], axis=1)
        for p in parts
    ]
    return np.concatenate(padded, axis=0)


def part_colours_u8(num_parts: int = 24) -> np.ndarray:
    """(num_parts + 1, 3) uint8 RGB: the project's part palette (pipeline.render.shade), black background."""
    from pipeline.render.shade import part_palette

    return np.clip(np.round(part_palette(num_parts).numpy() * 255.0), 0, 255).astype(np.uint8)


def iuv_contours(part: np.ndarray, coord: np.ndarray, step: float = 0.2) -> np.ndarray:
    """(H, W) bool: pixels where the (H, W) surface coordinate `coord` (in [0, 1]) crosses a multiple of
    `step` between 4-neighbours of the same part (part > 0): iso-lines of U or V, DensePose-style."""
    level = np.floor(np.asarray(coord, dtype=np.float64) / step).astype(np.int64)
    edge = np.zeros(part.shape, bool)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        a, b = tuple(a), tuple(b)
        crossing = (level[a] != level[b]) & (part[a] == part[b]) & (part[a] > 0)
        edge[a] |= crossing
    return edge


def iuv_picture(
    part: np.ndarray, u: np.ndarray, v: np.ndarray, background: np.ndarray | None = None, alpha: float = 0.75
) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an IUV map read by people: parts (H, W ints 0..24) in the part palette blended
    with weight `alpha` over `background` (dimmed to half; black when None), U iso-lines every 0.2 in white,
    V iso-lines in black; u, v (H, W) floats in [0, 1]."""
    part = np.asarray(part).astype(np.int64)
    if background is None:
        background = np.zeros((*part.shape, 3), np.uint8)
    base = (background.astype(np.float64) * 0.5).astype(np.uint8)
    colours = part_colours_u8()[np.clip(part, 0, 24)]
    fg = part > 0
    out = base.copy()
    out[fg] = (alpha * colours[fg] + (1.0 - alpha) * base[fg]).astype(np.uint8)
    out[iuv_contours(part, u)] = (255, 255, 255)
    out[iuv_contours(part, v)] = (0, 0, 0)
    return out


def short_part_name(name: str) -> str:
    """ "upper_leg_right_back" -> "up leg R back": DensePose part names short enough for a legend cell."""
    words = {"upper": "up", "lower": "low", "right": "R", "left": "L"}
    return " ".join(words.get(w, w) for w in name.split("_"))


def densepose_legend(width: int, row_height: int = 16) -> np.ndarray:
    """The legend of the 24 DensePose parts in the project's palette, as many columns as fit `width`."""
    from pipeline.body.constants import DENSEPOSE_PART_NAMES

    names = [short_part_name(n) for n in DENSEPOSE_PART_NAMES[1:]]
    columns = max(1, min(6, width // 110))
    return part_legend(names, part_colours_u8()[1:], width, columns, row_height)
