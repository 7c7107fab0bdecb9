"""Stand-in renderers for tests and bench/shards.py: cheap, deterministic, no body model.

Each satisfies :class:`pipeline.renderers.Renderer` and is named on a command line by its spec, e.g.
``--renderer tests.fixtures_data.renderers:keypoint_disk_renderer``. The factories below record what they
were built with, for the tests of the interface (tests/test_render_interface.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pipeline import crop as cropping
from pipeline.renderers import RendererFactory

KEYPOINT_DISK = "tests.fixtures_data.renderers:keypoint_disk_renderer"


def keypoint_disk_renderer(
    rows: Sequence[dict], crop_transforms: Sequence[np.ndarray], crop_size: int
) -> list[np.ndarray | None]:
    """Each visible kp2d joint ``j`` drawn as a disk of radius ``crop_size / 24`` pixels (at least 2), with
    I = ``j + 1``, U = 64 + 4 j, V = 255 - 4 j. Rows without SMPL get ``None`` like the real renderer."""
    radius = max(2, crop_size // 24)
    out: list[np.ndarray | None] = []
    for row, m in zip(rows, crop_transforms, strict=True):
        if not row["has_smpl"]:
            out.append(None)
            continue
        iuv = np.zeros((crop_size, crop_size, 3), np.uint8)
        kp = cropping.crop_keypoints(m, np.asarray(row["kp2d"], np.float64).reshape(24, 3))
        for j, (x, y, vis) in enumerate(kp):
            if vis > 0 and -radius <= x < crop_size + radius and -radius <= y < crop_size + radius:
                colour = (j + 1, 64 + 4 * j, 255 - 4 * j)
                cv2.circle(iuv, (int(round(x)), int(round(y))), radius, colour, thickness=-1)
        out.append(iuv)
    return out


# --- for the interface tests: factories that take exactly what they declare (keyword-only, no defaults,
# so a missing or an extra setting is a TypeError), and renderers that break the interface

BUILT_WITH: list[dict] = []  # one entry per factory call: the settings it got


def _recording_build(**settings) -> object:
    BUILT_WITH.append(settings)
    return keypoint_disk_renderer


def _build_nothing() -> object:
    return _recording_build()


def _build_device(*, device: str) -> object:
    return _recording_build(device=device)


def _build_body(*, body) -> object:
    return _recording_build(body=body)


def _build_both(*, device: str, body) -> object:
    return _recording_build(device=device, body=body)


takes_nothing = RendererFactory(_build_nothing)
takes_device = RendererFactory(_build_device, takes=frozenset({"device"}))
takes_body = RendererFactory(_build_body, takes=frozenset({"body"}))
takes_both = RendererFactory(_build_both, takes=frozenset({"device", "body"}))
builds_no_renderer = RendererFactory(lambda: "not a renderer")

NOT_CALLABLE = (1, 2, 3)


class RendererClass:
    """A class is not a renderer (calling it would construct one, not render)."""

    def __init__(self, rows, crop_transforms, crop_size) -> None:
        self.rows = rows


def wrong_shape_renderer(rows, crop_transforms, crop_size):
    """Callable with the right arguments, but maps one pixel too small: each SMPL row becomes a reject."""
    return [np.zeros((crop_size - 1, crop_size, 3), np.uint8) if r["has_smpl"] else None for r in rows]
