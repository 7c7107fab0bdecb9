"""3DPW's own sequence files: ``sequenceFiles/{train,validation,test}/<sequence>.pkl``.

Each file is a Python 2 pickle (read with ``encoding='latin1'``) of a dict with, for P people and F frames:
``sequence`` (str), ``poses`` P x (F,72), ``betas`` P x (>=10,), ``trans`` P x (F,3), ``poses2d``
P x (F,3,18) (OpenPose COCO-18 joints: x, y, confidence), ``campose_valid`` P x (F,) bool,
``cam_poses`` (F,4,4) world-to-camera extrinsics, ``genders`` P x 'm'/'f' (the readme calls it
``gender``; both are accepted), ``jointPositions`` P x (F,72), ``cam_intrinsics`` (3,3), ``img_frame_ids``.

Rows: one per person and frame with ``campose_valid``. The SMPL root orientation is moved into the camera
frame, R_root_cam = R_cam[:3,:3] @ R_root_world (as SPIN's preprocessing does), so the pose matches the
image. kp2d = ``poses2d`` mapped into SPIN-24 (confidence kept as visibility); the box is the SPIN box of
the joints with confidence > 0. ``jointPositions`` are world-frame SMPL joints, not SPIN-24, so
``has_kp3d`` is false (the body model gives 3D joints from pose/betas). Image: ``imageFiles/<sequence>/
image_<frame:05d>.jpg``. Sample id ``3dpw_<sequence>_p<person>_<frame:05d>``; subject ``p<person>``.
A person whose arrays have the wrong shape is rejected as a whole, naming the key.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
from scipy.spatial.transform import Rotation

from .pickles import load_py2_pickle
from .rows import Block, concat, sanitize_id

# OpenPose COCO-18 joint index -> SPIN-24 index (documented in SPIN24_NAMES order):
# 0 nose->19, 1 neck->12 (LSP neck), 2 r_shoulder->8, 3 r_elbow->7, 4 r_wrist->6, 5 l_shoulder->9,
# 6 l_elbow->10, 7 l_wrist->11, 8 r_hip->2, 9 r_knee->1, 10 r_ankle->0, 11 l_hip->3, 12 l_knee->4,
# 13 l_ankle->5, 14 r_eye->21, 15 l_eye->20, 16 r_ear->23, 17 l_ear->22.
OPENPOSE18_TO_SPIN24 = (19, 12, 8, 7, 6, 9, 10, 11, 2, 1, 0, 3, 4, 5, 21, 20, 23, 22)


def camera_frame_root(pose: np.ndarray, cam_rot: np.ndarray) -> np.ndarray:
    """Rotate the SMPL root into the camera frame.

    pose: (F, 72) axis-angle with the root (world frame) in [:, :3]; cam_rot: (F, 3, 3) world-to-camera
    rotations. Returns a copy with [:, :3] = axis-angle of cam_rot @ R(root).
    """
    out = pose.copy()
    root = Rotation.from_matrix(cam_rot @ Rotation.from_rotvec(pose[:, :3]).as_matrix())
    out[:, :3] = root.as_rotvec()
    return out


def _gender(value) -> str:
    g = (value.decode("latin1") if isinstance(value, bytes) else str(value)).strip().lower()[:1]
    return g if g in ("m", "f") else "n"


def parse_pw3d_sequence(path: Path, image_root: str, file_label: str) -> Block:
    """Rows of one 3DPW sequence pickle (see module docstring)."""
    data = load_py2_pickle(path)
    seq = str(data.get("sequence", path.stem))
    cam_poses = np.asarray(data["cam_poses"], np.float64)
    genders = data.get("genders", data.get("gender", []))
    persons = []
    for p, poses in enumerate(data["poses"]):
        poses = np.asarray(poses, np.float64)
        n_frames = len(cam_poses)
        valid = np.asarray(data["campose_valid"][p]).astype(bool).reshape(-1)
        kp = np.asarray(data["poses2d"][p], np.float64)
        betas = np.asarray(data["betas"][p], np.float64).reshape(-1)
        checks = {
            "poses": poses.shape == (n_frames, 72),
            "poses2d": kp.shape == (n_frames, 3, 18),
            "campose_valid": valid.shape == (n_frames,),
            "betas": betas.shape[0] >= 10,
            "cam_poses": cam_poses.shape == (n_frames, 4, 4),
        }
        frames = np.flatnonzero(valid) if checks["campose_valid"] else np.arange(len(poses))
        block = Block(len(frames), file_label)
        block.source_row[:] = [f"{file_label}:p{p}:f{f}" for f in frames]
        block.sample_id[:] = [f"3dpw_{sanitize_id(seq)}_p{p}_{f:05d}" for f in frames]
        block.image_path[:] = [
            str(PurePosixPath(image_root, "imageFiles", seq, f"image_{f:05d}.jpg")) for f in frames
        ]
        block.subject[:] = f"p{p}"
        block.sequence[:] = seq
        bad = [k for k, good in checks.items() if not good]
        if bad:
            shapes = {"poses": poses.shape, "poses2d": kp.shape, "campose_valid": valid.shape}
            shapes |= {"betas": betas.shape, "cam_poses": cam_poses.shape}
            block.reject(
                slice(None), bad[0], f"wrong shape: {bad[0]} is {shapes[bad[0]]} for {n_frames} frames"
            )
            persons.append(block)
            continue
        block.gender[:] = _gender(genders[p]) if p < len(genders) else "n"
        block.pose = camera_frame_root(poses[frames], cam_poses[frames, :3, :3])
        block.betas[:] = betas[:10]
        block.has_smpl[:] = True
        block.kp2d[:, OPENPOSE18_TO_SPIN24, :] = kp[frames].transpose(0, 2, 1)
        block.set_box_from_kp2d()
        persons.append(block)
    return concat(persons) if persons else Block(0, file_label)
