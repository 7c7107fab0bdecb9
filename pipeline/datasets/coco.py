"""COCO person-keypoint JSON, with or without DensePose-COCO annotations (same file layout).

Read with pycocotools' ``COCO`` index. One candidate row per person annotation (category 1) that is not a
crowd; annotations with neither a labelled keypoint nor DensePose points are rejected (nothing to learn).

- kp2d: COCO's 17 keypoints (x, y, v with v in 0/1/2) into SPIN-24 order, visibility = 1 when v > 0, via
  :data:`COCO17_TO_SPIN24` (SPIN's own map): nose->19, l_eye->20, r_eye->21, l_ear->22, r_ear->23,
  l_shoulder->9, r_shoulder->8, l_elbow->10, r_elbow->7, l_wrist->11, r_wrist->6, l_hip->3, r_hip->2,
  l_knee->4, r_knee->1, l_ankle->5, r_ankle->0. The other SPIN joints (LSP neck/head top, pelvis, ...) get
  visibility 0.
- center/scale: from the annotation's ``bbox`` [x, y, w, h]: center = box centre, scale = 1.2 * max(w, h)
  / 200 (SPIN's convention for COCO).
- DensePose (when ``dp_x`` is present): ``dp_x``/``dp_y`` are stored in *image pixels*
  (x = bbox_x + dp_x / 256 * bbox_w; the file's values live in a 256x256 frame over the box), ``dp_I``
  (1..24) as int8, ``dp_U``/``dp_V`` as given. ``mask`` is a JSON string with ``bbox``, ``segmentation``
  (image-pixel polygons or RLE, as in the file) and ``dp_masks`` (14 coarse-part RLEs in the 256x256 box
  frame; ``[]`` entries become null), keeping the masks for supervision.
- Sample id ``<dataset>_<image_id:012d>_<annotation_id>``; image path ``<image_root>/<file_name>``.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path, PurePosixPath

import numpy as np
from pycocotools.coco import COCO

from pipeline.conventions import BBOX_UNIT, BOX_PADDING

from .rows import Block

# COCO-17 keypoint index -> SPIN-24 joint index.
COCO17_TO_SPIN24 = (19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0)
_DP_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode("ascii")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _mask_json(ann: dict) -> str:
    out = {"bbox": [float(v) for v in ann["bbox"]]}
    if ann.get("segmentation"):
        out["segmentation"] = _jsonable(ann["segmentation"])
    if "dp_masks" in ann:
        out["dp_masks"] = [_jsonable(m) if m else None for m in ann["dp_masks"]]
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def parse_coco_json(path: Path, dataset: str, image_root: str, file_label: str) -> Block:
    """Rows of one COCO / DensePose-COCO annotation file (see module docstring)."""
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress chatter
        coco = COCO(str(path))
    ann_ids = sorted(coco.getAnnIds(catIds=[1], iscrowd=False))
    anns = coco.loadAnns(ann_ids)
    n = len(anns)
    block = Block(n, file_label)
    extras: dict[str, list] = {k: [None] * n for k in (*_DP_KEYS, "mask")}
    for i, ann in enumerate(anns):
        image = coco.imgs.get(ann["image_id"], {})
        block.source_row[i] = f"{file_label}:ann{ann['id']}"
        block.sample_id[i] = f"{dataset}_{int(ann['image_id']):012d}_{int(ann['id'])}"
        if "file_name" not in image:
            block.reject(i, "image_id", f"image_id {ann['image_id']} has no entry in 'images'")
            continue
        block.image_path[i] = str(PurePosixPath(image_root, image["file_name"]))
        try:
            bx, by, bw, bh = (float(v) for v in ann["bbox"])
            kp = np.asarray(ann.get("keypoints", [0.0] * 51), np.float64).reshape(17, 3)
        except (KeyError, TypeError, ValueError) as e:
            block.reject(i, "bbox/keypoints", f"malformed bbox or keypoints: {e}"[:200])
            continue
        block.center[i] = (bx + bw / 2, by + bh / 2)
        block.scale[i] = BOX_PADDING * max(bw, bh) / BBOX_UNIT
        block.kp2d[i, COCO17_TO_SPIN24, :2] = kp[:, :2]
        block.kp2d[i, COCO17_TO_SPIN24, 2] = (kp[:, 2] > 0).astype(np.float64)
        has_dp = "dp_x" in ann
        if has_dp:
            try:
                dp = {k: np.asarray(ann[k], np.float64).reshape(-1) for k in _DP_KEYS}
            except (KeyError, TypeError, ValueError) as e:
                block.reject(i, "dp_x", f"malformed DensePose points: {e}"[:200])
                continue
            lengths = {len(v) for v in dp.values()}
            if len(lengths) != 1:
                block.reject(i, "dp_x", f"DensePose point lists differ in length: {sorted(lengths)}")
                continue
            if not all(np.isfinite(v).all() for v in dp.values()):
                block.reject(i, "dp_x", "NaN or inf value in DensePose points")
                continue
            if dp["dp_I"].size and not ((dp["dp_I"] >= 1) & (dp["dp_I"] <= 24)).all():
                block.reject(i, "dp_I", "DensePose part index outside 1..24")
                continue
            extras["dp_x"][i] = (bx + dp["dp_x"] / 256.0 * bw).tolist()
            extras["dp_y"][i] = (by + dp["dp_y"] / 256.0 * bh).tolist()
            extras["dp_I"][i] = dp["dp_I"].astype(np.int8).tolist()
            extras["dp_U"][i] = dp["dp_U"].tolist()
            extras["dp_V"][i] = dp["dp_V"].tolist()
        if not (kp[:, 2] > 0).any() and not has_dp:
            block.reject(i, "keypoints", "no labelled keypoint and no DensePose points")
            continue
        extras["mask"][i] = _mask_json(ann)
    block.extras = extras
    return block
