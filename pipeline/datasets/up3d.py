"""UP-3D's own files (``up-3d.zip`` unpacked to ``up-3d/``).

- Split lists ``trainval.txt`` / ``test.txt`` (also ``train.txt``, ``val.txt``): one image per line written
  ``/NNNNN_image.png`` (leading slash); blank lines are skipped.
- ``NNNNN_body.pkl``: a Python 2 pickle dict with ``pose`` (72,) SMPL axis-angle, ``betas`` (10,),
  ``trans`` (3,), and the SMPLify camera ``f`` (2,) focal, ``t`` (3,) translation, ``rt`` (3,) rotation
  (axis-angle; zero in SMPLify fits, applied to the root anyway so the pose is always camera-frame).
- ``NNNNN_joints.npy``: the 2D joints the fit used. We assume (as in UP-3D's LSP-style annotation files)
  shape (3, 14): rows x, y, visibility over the 14 LSP joints, which are SPIN-24 joints 0-13. The transposed
  (14, 3) and visibility-less (2, 14)/(14, 2) forms are accepted; anything else rejects the row.

Rows: gender ``n`` (SMPLify fits a neutral body), ``has_smpl`` true, no 3D joints, box = SPIN box of the
visible joints (factor 1.2). Image ``<image_root>/NNNNN_image.png``; sample id ``up3d_NNNNN``.
"""

from __future__ import annotations

import pickle
from pathlib import Path, PurePosixPath

import numpy as np
from scipy.spatial.transform import Rotation

from .pickles import load_py2_pickle
from .rows import Block, sanitize_id


def read_split_list(path: Path) -> list[str]:
    """Image stems (``NNNNN``) listed in a UP-3D split file, in file order."""
    stems = []
    for line in path.read_text().splitlines():
        name = line.strip().lstrip("/")
        if name:
            stems.append(name[: -len("_image.png")] if name.endswith("_image.png") else Path(name).stem)
    return stems


def joints_lsp14(arr: np.ndarray) -> np.ndarray | None:
    """UP-3D joints array -> (14, 3) x, y, visibility; None when the shape is not one we know."""
    arr = np.asarray(arr, np.float64)
    if arr.shape in ((3, 14), (2, 14)):
        arr = arr.T
    if arr.shape == (14, 2):
        arr = np.concatenate([arr, np.ones((14, 1))], axis=1)
    return arr if arr.shape == (14, 3) else None


def parse_up3d(list_path: Path, image_root: str, file_label: str) -> Block:
    """Rows of one UP-3D split list; the per-image files sit next to the list."""
    folder = list_path.parent
    stems = read_split_list(list_path)
    block = Block(len(stems), file_label)
    block.source_row[:] = [f"{file_label}:{i}" for i in range(len(stems))]
    block.sample_id[:] = [f"up3d_{sanitize_id(s)}" for s in stems]
    block.image_path[:] = [str(PurePosixPath(image_root, f"{s}_image.png")) for s in stems]
    for i, stem in enumerate(stems):
        try:
            body = load_py2_pickle(folder / f"{stem}_body.pkl")
        except (OSError, EOFError, ValueError, KeyError, AttributeError, pickle.UnpicklingError) as e:
            block.reject(
                i, "body.pkl", f"unreadable body.pkl: {stem}_body.pkl: {type(e).__name__}: {e}"[:200]
            )
            continue
        try:
            pose = np.asarray(body["pose"], np.float64).reshape(-1)
            betas = np.asarray(body["betas"], np.float64).reshape(-1)
            rt = np.asarray(body.get("rt", np.zeros(3)), np.float64).reshape(-1)
        except (KeyError, TypeError, ValueError) as e:
            block.reject(i, "body.pkl", f"no numeric pose/betas: {stem}_body.pkl: {e}"[:200])
            continue
        if pose.shape != (72,) or betas.shape[0] < 10 or rt.shape != (3,):
            block.reject(
                i,
                "body.pkl",
                f"wrong shapes: {stem}_body.pkl: pose {pose.shape}, betas {betas.shape}, rt {rt.shape}",
            )
            continue
        try:
            joints = joints_lsp14(np.load(folder / f"{stem}_joints.npy", allow_pickle=False))
        except (OSError, ValueError, EOFError) as e:
            block.reject(i, "joints.npy", f"unreadable joints.npy: {stem}_joints.npy: {e}"[:200])
            continue
        if joints is None:
            block.reject(i, "joints.npy", f"unknown joints shape: {stem}_joints.npy (expected 3x14)")
            continue
        root = Rotation.from_rotvec(rt) * Rotation.from_rotvec(pose[:3])
        block.pose[i] = np.concatenate([root.as_rotvec(), pose[3:]])
        block.betas[i] = betas[:10]
        block.has_smpl[i] = True
        block.kp2d[i, :14] = joints
    block.set_box_from_kp2d()
    return block
