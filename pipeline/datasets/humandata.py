"""mmhuman3d's HumanData ``.npz`` files (``format: humandata``), the output of its ~25 dataset converters.

Layout (``mmhuman3d/data/data_structures/human_data.py``; N rows, K joints of the file's convention):

- ``image_path`` (N,) str, relative to the images' dataset folder (mmhuman3d's ``data/datasets/<name>``);
- ``bbox_xywh`` (N, 5) x, y, w, h, confidence in pixels (older files (N, 4)); the converters already padded
  the box (e.g. 1.2 x the keypoint box, or SPIN's 200 * scale side), so centre = (x + w/2, y + h/2) and
  scale = max(w, h) / :data:`pipeline.crop.BBOX_UNIT` with no further factor; the confidence is not used
  (mmhuman3d's own loader ignores it too);
- ``keypoints2d`` (N, K, 3) x, y, confidence; ``keypoints2d_mask`` (K,) 1 where the dataset has the joint;
  ``keypoints2d_convention`` str (absent: ``human_data``); likewise ``keypoints3d`` (N, K, 4) x, y, z
  metres (root-centred, as SPIN's ``S``), confidence; ``keypoints3d_mask``, ``keypoints3d_convention``;
- ``__keypoints_compressed__`` bool: when true the keypoint arrays hold only the joints whose mask is 1
  (N, mask.sum(), C) and are zero-padded back to K here;
- ``smpl``: a dict in a 0-d object array: ``global_orient`` (N, 3), ``body_pose`` (N, 23, 3) or (N, 69)
  (or a full ``pose`` (N, 72)), ``betas`` (N, >=10), ``transl`` (N, 3) (not part of the manifest);
  optional top-level ``has_smpl`` (N,);
- ``meta``: a dict in a 0-d object array, ``gender`` (N,) ``'m'``/``'f'``/``'male'``/``'female'``
  (numbers are ambiguous between converters and read as neutral); ``config`` str, ``misc``,
  ``cam_param`` and the other keys are ignored.

The object members (``smpl``, ``meta``) go through the restricted unpickler (:mod:`pipeline.safe_pickle`):
a file whose objects name anything but numpy arrays and plain containers is a file-level reject.

Rows: kp2d / kp3d are the file's joints moved to SPIN-24 by joint name (:mod:`.keypoint_names`);
visibility = confidence clipped to [0, 1], and 0 where the mask is 0 or SPIN's joint is not in the
convention (such joints are all zeros, so NaN left in a masked-out joint does not reject the row).
``has_kp3d`` when the file has ``keypoints3d``. Sample ids as for SPIN's npz
(``<dataset>_<image path without extension>``, ``_p<k>`` for several people in one image); action, subject
and sequence are parsed from the image path as for the images' dataset (:data:`HUMANDATA_FILES`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.crop import BBOX_UNIT
from pipeline.safe_pickle import load_npz

from .keypoint_names import CONVENTIONS, spin24_sources
from .rows import Block
from .spin_npz import IngestError, name_fields, sample_ids

# mmhuman3d's published preprocessed file names -> the dataset whose images they index (their image paths
# carry subject / action / sequence the way that dataset's own files do; docs/ingest.md lists the splits).
HUMANDATA_FILES: dict[str, str] = {
    "pw3d_train.npz": "3dpw",
    "pw3d_test.npz": "3dpw",
    "spin_pw3d_test.npz": "3dpw",
    "vibe_pw3d_test.npz": "3dpw",
    "hybrik_pw3d_test.npz": "3dpw",
    "h36m_train.npz": "h36m",
    "h36m_mosh_train.npz": "h36m",
    "hybrik_h36m_train.npz": "h36m",
    "h36m_valid_protocol1.npz": "h36m",
    "h36m_valid_protocol2.npz": "h36m",
    "mpi_inf_3dhp_train.npz": "mpi_inf_3dhp",
    "spin_mpi_inf_3dhp_train.npz": "mpi_inf_3dhp",
    "vibe_mpi_inf_3dhp_train.npz": "mpi_inf_3dhp",
    "hybrik_mpi_inf_3dhp_train.npz": "mpi_inf_3dhp",
    "mpi_inf_3dhp_test.npz": "mpi_inf_3dhp",
    "lsp_train.npz": "lsp",
    "spin_lsp_train.npz": "lsp",
    "lspet_train.npz": "lsp_extended",
    "spin_lspet_train.npz": "lsp_extended",
    "eft_lspet.npz": "lsp_extended",
    "mpii_train.npz": "mpii",
    "spin_mpii_train.npz": "mpii",
    "eft_mpii.npz": "mpii",
    "coco_2014_train.npz": "coco",
    "spin_coco_2014_train.npz": "coco",
    "eft_coco_all.npz": "coco",
}


def _str(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _scalar(arrays: dict, key: str, default):
    value = arrays.get(key)
    if value is None:
        return default
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _dict_member(path: Path, arrays: dict, key: str) -> dict:
    value = _scalar(arrays, key, {})
    if not isinstance(value, dict):
        raise IngestError(f"{path}: key {key!r} holds {type(value).__name__}, expected a dict")
    return value


def _keypoints(path: Path, arrays: dict, kind: str, n: int, dim: int) -> np.ndarray | None:
    """``keypoints{kind}`` in SPIN-24 order (n, 24, dim), visibility/confidence masked; None if absent."""
    key = f"keypoints{kind}"
    if key not in arrays:
        return None
    kp = np.asarray(arrays[key])
    convention = _str(_scalar(arrays, f"{key}_convention", "human_data"))
    try:
        sources = spin24_sources(convention)
    except KeyError as e:
        raise IngestError(f"{path}: {key}_convention: {e.args[0]}") from e
    if kp.dtype.kind not in "fiub" or kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != dim:
        raise IngestError(f"{path}: key {key!r} has shape {kp.shape} {kp.dtype}, expected ({n}, K, {dim})")
    joints = len(CONVENTIONS[convention])
    mask = np.asarray(arrays.get(f"{key}_mask", np.ones(joints)), np.float64).reshape(-1)
    if mask.shape[0] != joints:
        raise IngestError(f"{path}: {key}_mask has {mask.shape[0]} joints, {convention!r} has {joints}")
    present = mask > 0
    column = np.arange(joints)  # where joint j of the convention sits in the stored array
    if bool(_scalar(arrays, "__keypoints_compressed__", False)):  # only the masked-in joints are stored
        column = np.cumsum(present) - 1
        stored = int(present.sum())
    else:
        stored = joints
    if kp.shape[1] != stored:
        raise IngestError(
            f"{path}: {key} has {kp.shape[1]} joints, expected {stored} "
            f"(convention {convention!r}, {int(present.sum())} in {key}_mask)"
        )
    have = sources >= 0
    have[have] = present[sources[have]]  # a joint the file masks out is absent: zeros, visibility 0
    out = np.zeros((n, 24, dim))
    out[:, have] = kp[:, column[sources[have]]]  # gathers 24 joints before the float64 copy
    out[..., -1] = np.clip(np.nan_to_num(out[..., -1], nan=0.0), 0.0, 1.0)
    return out


def _smpl(path: Path, block: Block, smpl: dict, arrays: dict) -> None:
    """Fill pose/betas/has_smpl from the ``smpl`` dict; wrong shapes reject every row naming the key."""
    n = block.n
    try:
        keys = ("global_orient", "body_pose", "pose", "betas")
        parts = {k: np.asarray(v, np.float64) for k, v in smpl.items() if k in keys}
    except (TypeError, ValueError) as e:
        block.reject(slice(None), "smpl", f"smpl holds a non-numeric array: {e}"[:200])
        return
    if "pose" in parts and "body_pose" not in parts:
        pose = parts["pose"].reshape(n, -1) if parts["pose"].size == n * 72 else None
        where = "smpl.pose"
    elif "global_orient" in parts and "body_pose" in parts:
        body, orient = parts["body_pose"], parts["global_orient"]
        ok = body.size == n * 69 and orient.size == n * 3
        pose = np.concatenate([orient.reshape(n, 3), body.reshape(n, 69)], axis=1) if ok else None
        where = "smpl.body_pose"
        if not ok and body.size == n * 63:
            block.reject(slice(None), where, "smpl.body_pose has 21 joints: an SMPL-X fit, not SMPL")
            return
    else:
        block.reject(
            slice(None), "smpl", f"smpl has no global_orient + body_pose or pose (has {sorted(smpl)})"
        )
        return
    betas = parts.get("betas")
    if pose is None:
        shapes = {k: v.shape for k, v in parts.items()}
        block.reject(slice(None), where, f"smpl arrays of the wrong shape for {n} rows: {shapes}")
        return
    if betas is None or betas.ndim != 2 or betas.shape[0] != n or betas.shape[1] < 10:
        got = None if betas is None else betas.shape
        block.reject(slice(None), "smpl.betas", f"smpl.betas is {got}, expected ({n}, >=10)")
        return
    has = np.ones(n, bool)
    if "has_smpl" in arrays:
        flag = np.asarray(arrays["has_smpl"]).reshape(-1)
        if flag.shape != (n,):
            raise IngestError(f"{path}: key 'has_smpl' has {flag.shape} rows, image_path has {n}")
        has = flag.astype(np.float64) > 0
    block.has_smpl = has
    block.pose = np.where(has[:, None], pose, 0.0)
    block.betas = np.where(has[:, None], betas[:, :10], 0.0)


def _genders(values) -> list[str]:
    out = []
    for v in np.asarray(values).reshape(-1).tolist():
        letter = _str(v).strip().lower()[:1] if isinstance(v, str | bytes) else ""
        out.append(letter if letter in ("m", "f") else "n")
    return out


def parse_humandata(path: Path, dataset: str, image_root: str, file_label: str) -> Block:
    """Rows of one HumanData npz (see module docstring); file-level problems raise IngestError."""
    arrays = load_npz(path)  # FileReadError / UnsafePickleError: the whole file is a reject
    if "image_path" not in arrays:
        raise IngestError(f"{path}: required key 'image_path' missing (has {sorted(arrays)})")
    images = [_str(v) for v in np.asarray(arrays["image_path"]).reshape(-1)]
    n = len(images)
    names_as = HUMANDATA_FILES.get(path.name, dataset)
    block = Block(n, file_label, source_names={"kp2d": "keypoints2d", "kp3d": "keypoints3d"})
    block.source_row[:] = [f"{file_label}:{i}" for i in range(n)]
    block.sample_id[:] = sample_ids(dataset, images)
    block.image_path[:] = [str(PurePosixPath(image_root, name)) for name in images]
    for i, name in enumerate(images):
        block.action[i], block.subject[i], block.sequence[i] = name_fields(names_as, name)

    kp2d = _keypoints(path, arrays, "2d", n, 3)
    if kp2d is not None:
        block.kp2d = kp2d
    kp3d = _keypoints(path, arrays, "3d", n, 4)
    if kp3d is not None:
        block.kp3d = kp3d
        block.has_kp3d[:] = True
    if "bbox_xywh" in arrays:
        box = np.asarray(arrays["bbox_xywh"])
        if box.dtype.kind not in "fiub" or box.ndim != 2 or box.shape[0] != n or box.shape[1] not in (4, 5):
            raise IngestError(f"{path}: key 'bbox_xywh' has shape {box.shape}, expected ({n}, 5)")
        box = box.astype(np.float64)
        block.center = box[:, :2] + box[:, 2:4] / 2
        block.scale = np.max(box[:, 2:4], axis=1) / BBOX_UNIT
        block.source_names["center"] = block.source_names["scale"] = "bbox_xywh"
    else:
        block.set_box_from_kp2d()  # no box: the SPIN box of the visible 2D keypoints
    if "smpl" in arrays:
        _smpl(path, block, _dict_member(path, arrays, "smpl"), arrays)
    gender = _dict_member(path, arrays, "meta").get("gender")
    if gender is not None:
        genders = _genders(gender)
        if len(genders) == n:
            block.gender[:] = genders
        else:
            block.reject(
                slice(None), "meta.gender", f"meta.gender has {len(genders)} rows, image_path has {n}"
            )
    return block
