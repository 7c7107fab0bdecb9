"""IUV rendering: batched rasterizer (Warp or torch), cameras, IUV encodings, flip tables, shading.

Modules: rasterize (Fragments, rasterize), raster_warp / raster_torch (backends), cameras (crop and
perspective cameras), iuv (IUV images, encodings, one-hot, IUVRenderer), flip (UV mirror tables),
shade (Lambert RGB), meshes (synthetic test meshes), demo (the picture of ``stages.render_iuv --demo``).
"""

from pipeline.render.cameras import PerspectiveCamera, WeakPerspectiveCamera
from pipeline.render.flip import FlipTable, build_flip_table, flip_iuv
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
from pipeline.render.rasterize import Fragments, rasterize
from pipeline.render.shade import render_shaded, shade

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
    "rasterize",
    "render_shaded",
    "shade",
]
