"""DensePose-COCO-style annotations of the synthetic set, sampled from its rendered IUV maps.

One annotation per person in the real file layout (densepose_coco_2014_*.json), so the COCO reader
(pipeline.datasets.coco) ingests them like the real ones:

- ``bbox`` [x, y, w, h]: the tight box of the person's foreground pixels, edges on pixel borders (pixel
  centres at integers, so a box over columns c0..c1 starts at c0 - 0.5 and is c1 - c0 + 1 wide);
- ``dp_x``, ``dp_y``: points in the 256 x 256 frame over the box (x = (column - box x) / w * 256, the
  reader's inverse), at pixel centres drawn uniformly without replacement from the foreground;
- ``dp_I`` the pixel's part (1..24), ``dp_U``, ``dp_V`` its U, V codes / 255;
- ``dp_masks``: 14 coarse-part masks over the box at 256 x 256 (nearest sampling of the coarse labels of
  the map, ``PART_TO_COARSE``), compressed RLE via pycocotools, ``[]`` for a part not seen;
- ``keypoints``: COCO's 17 from the SPIN-24 keypoints (``COCO17_TO_SPIN24``), v = 2 inside the image, else 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.body.constants import NUM_COARSE_PARTS, PART_TO_COARSE
from pipeline.datasets.coco import COCO17_TO_SPIN24
from pipeline.dp_points import DP_BOX_SIDE, box_to_image

POINTS_PER_PERSON = 100  # DensePose-COCO: ~100 annotated points per person


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def foreground_box(part: np.ndarray) -> list[float] | None:
    """[x, y, w, h] of the nonzero pixels of an (H, W) part map, edges on pixel borders; None if empty."""
    rows, cols = np.nonzero(part)
    if rows.size == 0:
        return None
    x0, x1, y0, y1 = cols.min(), cols.max(), rows.min(), rows.max()
    return [float(x0) - 0.5, float(y0) - 0.5, float(x1 - x0 + 1), float(y1 - y0 + 1)]


def densepose_annotation(
    iuv: np.ndarray, kp2d: np.ndarray, rng: np.random.Generator, n_points: int = POINTS_PER_PERSON
) -> dict | None:
    """The DensePose-COCO fields (see module docstring) of one person's (H, W, 3) uint8 IUV map over the
    whole image and its SPIN-24 keypoints (24, 3) in image pixels; None when the person is not in view."""
    part = iuv[..., 0]
    bbox = foreground_box(part)
    if bbox is None:
        return None
    bx, by, bw, bh = bbox
    rows, cols = np.nonzero(part)
    pick = np.sort(rng.choice(rows.size, size=min(n_points, rows.size), replace=False))
    r, c = rows[pick], cols[pick]
    coarse = np.asarray(PART_TO_COARSE, np.uint8)[part]
    to_box = cv2.invertAffineTransform(box_to_image(bbox))
    side = int(DP_BOX_SIDE)
    box_labels = cv2.warpAffine(coarse, to_box, (side, side), flags=cv2.INTER_NEAREST, borderValue=0)
    masks = [_rle(box_labels == k) if (box_labels == k).any() else [] for k in range(1, NUM_COARSE_PARTS + 1)]
    h, w = part.shape
    kp = np.asarray(kp2d, np.float64)[list(COCO17_TO_SPIN24)]
    inside = (kp[:, 2] > 0) & (kp[:, 0] >= 0) & (kp[:, 0] < w) & (kp[:, 1] >= 0) & (kp[:, 1] < h)
    keypoints = np.c_[np.where(inside[:, None], kp[:, :2], 0.0), 2.0 * inside].reshape(-1)
    return {
        "bbox": bbox,
        "area": float(rows.size),
        "keypoints": keypoints.tolist(),
        "num_keypoints": int(inside.sum()),
        "dp_x": ((c - bx) / bw * DP_BOX_SIDE).tolist(),
        "dp_y": ((r - by) / bh * DP_BOX_SIDE).tolist(),
        "dp_I": part[r, c].astype(float).tolist(),
        "dp_U": (iuv[r, c, 1] / 255.0).tolist(),
        "dp_V": (iuv[r, c, 2] / 255.0).tolist(),
        "dp_masks": masks,
    }


def coco_document(images: list[dict], annotations: list[dict]) -> dict:
    """A COCO json document: ``images`` ({id, file_name, width, height}) and person ``annotations`` (each with
    ``image_id``; ids, category and crowd flag filled in here)."""
    anns = [
        {"id": k, "category_id": 1, "iscrowd": 0, "segmentation": [], **a}
        for k, a in enumerate(annotations, start=1)
    ]
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
