"""IUV rendering: batched rasterizer (Warp or torch), cameras, IUV encodings, flip tables, shading.

Modules: rasterize (the entry point ``rasterize.rasterize`` and backend choice), fragments (the Fragments
result and depth-key layout the backends share), raster_warp / raster_torch (backends), cameras (crop and
perspective cameras), iuv (IUV images, encodings, one-hot, IUVRenderer), flip (UV mirror tables),
shade (Lambert RGB: ``shade.render_shaded``, ``shade.shade``), meshes (synthetic test meshes), demo (the
picture of ``stages.render_iuv --demo``).

The package exports classes and functions whose names differ from its modules', so that
``pipeline.render.rasterize`` and ``pipeline.render.shade`` always name the modules: call the functions as
``from pipeline.render.rasterize import rasterize`` and ``from pipeline.render.shade import shade``.
"""

from pipeline.render.cameras import PerspectiveCamera, WeakPerspectiveCamera
from pipeline.render.flip import FlipTable, build_flip_table, flip_iuv
from pipeline.render.fragments import Fragments
from pipeline.render.iuv import (
    IUVRenderer,
    coarse_index,
    decode_iuv,
    downsample_iuv,
    encode_iuv,
    iuv_from_fragments,
    iuv_to_onehot,
    onehot_to_iuv,
)
from pipeline.render.shade import render_shaded

__all__ = [
    "FlipTable",
    "Fragments",
    "IUVRenderer",
    "PerspectiveCamera",
    "WeakPerspectiveCamera",
    "build_flip_table",
    "coarse_index",
    "decode_iuv",
    "downsample_iuv",
    "encode_iuv",
    "flip_iuv",
    "iuv_from_fragments",
    "iuv_to_onehot",
    "onehot_to_iuv",
    "render_shaded",
]
