"""A run's curves for people and for `dvc plots`: every loss term, the learning rate and the validation curve.

From OUT/train_log.jsonl (one record per log interval: step, lr, mean loss terms) and OUT/val_curve.json
(model/training/validation.py) this writes

- OUT/train_terms.json: ``[{step, lr, total, pose, betas, ...}, ...]``, one row per logged step with every
  loss term logged there (unweighted, as in the log; ``total`` is the weighted sum that was optimised);
- OUT/train_curves.png: small multiples drawn with OpenCV (no plotting library, no browser): one panel per
  loss term (log scale), the learning rate and, when there is a validation curve, val PA-MPJPE (mm) and the
  IUV part accuracy (%) at each checkpoint. It shows offline, in `dvc plots show`'s HTML too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from pipeline.files import atomic_write_bytes, atomic_write_text
from pipeline.render.annotate import put_text, stack_rows, strip, text_width

TERMS_FILE = "train_terms.json"
CURVES_PNG = "train_curves.png"
PANEL = (300, 190)  # width, height of one panel, pixels
LINE = (40, 110, 220)  # RGB of the curves
VAL_LINE = (220, 90, 40)
INK = (40, 40, 40)  # text on the white charts


def term_rows(log_path: Path) -> list[dict]:
    """[{step, lr, **loss terms}] of a train_log.jsonl (records without a loss are left out)."""
    rows = []
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if isinstance(record.get("loss"), dict):
            rows.append({"step": record["step"], "lr": record.get("lr"), **record["loss"]})
    return rows


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About `count` round tick values covering [low, high] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def panel(
    title: str, xs: list[float], ys: list[float], log: bool = False, colour=LINE, x_range=None
) -> np.ndarray:
    """(h, w, 3) uint8 RGB line chart of ys over xs with axes, ticks and a title; log: log10 y axis."""
    width, height = PANEL
    out = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 52, 10, 24, 26
    put_text(out, title, (left, 16), 11, INK, None)
    points = [
        (x, y)
        for x, y in zip(xs, ys, strict=True)
        if y is not None and math.isfinite(y) and (y > 0 or not log)
    ]
    cv2.rectangle(out, (left, top), (width - right, height - bottom), (160, 160, 160), 1)
    if not points:
        put_text(out, "no data", (left + 10, height // 2), 11, INK, None)
        return out
    px = np.array([p[0] for p in points], dtype=np.float64)
    py = np.array([p[1] for p in points], dtype=np.float64)
    py = np.log10(py) if log else py
    x0, x1 = x_range or (float(px.min()), float(px.max()))
    x1 = x1 if x1 > x0 else x0 + 1
    y0, y1 = float(py.min()), float(py.max())
    pad = (y1 - y0) * 0.08 or max(abs(y0) * 0.1, 0.1)
    y0, y1 = y0 - pad, y1 + pad

    def to_pixel(x, y):
        u = left + (x - x0) / (x1 - x0) * (width - left - right)
        v = height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
        return int(round(u)), int(round(v))

    ticks = nice_ticks(y0, y1)
    decimals = max(0, -math.floor(math.log10(ticks[1] - ticks[0]))) if len(ticks) > 1 else 2
    for tick in ticks:
        _, v = to_pixel(x0, tick)
        cv2.line(out, (left, v), (width - right, v), (230, 230, 230), 1)
        label = f"{10**tick:.2g}" if log else f"{tick:.{decimals}f}"
        put_text(out, label, (left - 4 - text_width(label, 9), v + 4), 9, INK, None)
    for tick in nice_ticks(x0, x1, 3):
        u, _ = to_pixel(tick, y0)
        label = f"{tick:.0f}"
        put_text(out, label, (u - text_width(label, 9) // 2, height - 8), 9, INK, None)
    pixels = np.array([to_pixel(x, y) for x, y in zip(px, py, strict=True)], np.int32)
    cv2.polylines(out, [pixels.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
    if len(pixels) <= 30:
        for u, v in pixels:
            cv2.circle(out, (int(u), int(v)), 3, colour, -1, cv2.LINE_AA)
    return out


def curves_picture(rows: list[dict], val_rows: list[dict], columns: int = 4) -> np.ndarray:
    """The small multiples of :data:`CURVES_PNG` (see the module docstring)."""
    steps = [r["step"] for r in rows]
    x_range = (0.0, float(max(steps + [r["step"] for r in val_rows] + [1])))
    terms = sorted({k for r in rows for k in r if k not in ("step", "lr")}, key=lambda k: (k != "total", k))
    panels = [panel(f"loss: {k}", steps, [r.get(k) for r in rows], log=True, x_range=x_range) for k in terms]
    panels.append(panel("learning rate", steps, [r.get("lr") for r in rows], log=True, x_range=x_range))
    if val_rows:
        vs = [r["step"] for r in val_rows]
        panels.append(
            panel(
                "val PA-MPJPE (mm)",
                vs,
                [r.get("pa_mpjpe") for r in val_rows],
                colour=VAL_LINE,
                x_range=x_range,
            )
        )
        panels.append(
            panel(
                "val part accuracy (%)",
                vs,
                [r.get("iuv_part_accuracy") for r in val_rows],
                colour=VAL_LINE,
                x_range=x_range,
            )
        )
    blank = np.full((PANEL[1], PANEL[0], 3), 255, np.uint8)
    panels += [blank] * (-len(panels) % columns)
    grid = [np.concatenate(panels[i : i + columns], axis=1) for i in range(0, len(panels), columns)]
    title = strip(28, grid[0].shape[1])
    put_text(title, "training curves (x: step); loss terms unweighted, log scale", (8, 19), 13)
    return stack_rows(title, *grid)


def write_curves(out_dir: str | Path) -> list[Path]:
    """Write OUT/train_terms.json and OUT/train_curves.png from the run's log and validation curve."""
    out_dir = Path(out_dir)
    log_path = out_dir / "train_log.jsonl"
    if not log_path.is_file():
        return []
    from model.training.validation import VAL_CURVE_FILE

    rows = term_rows(log_path)
    val_path = out_dir / VAL_CURVE_FILE
    val_rows = json.loads(val_path.read_text()) if val_path.is_file() else []
    terms_path, png_path = out_dir / TERMS_FILE, out_dir / CURVES_PNG
    atomic_write_text(terms_path, json.dumps(rows, indent=1) + "\n")
    ok, data = cv2.imencode(".png", np.ascontiguousarray(curves_picture(rows, val_rows)[..., ::-1]))
    if not ok:
        raise ValueError(f"{png_path}: PNG encoding failed")
    atomic_write_bytes(png_path, data.tobytes())
    return [terms_path, png_path]
