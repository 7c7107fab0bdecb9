"""Keypoint conventions of mmhuman3d's HumanData files, as ordered joint-name lists, and their map to SPIN-24.

The names are mmhuman3d's (``mmhuman3d/core/conventions/keypoints_mapping/*.py``); a convention is the
list of joint names in array order, and two conventions share a joint exactly when they share its name
(``right_hip`` is SMPL's hip joint, ``right_hip_extra`` the LSP-style hip of SPIN's J_regressor_extra;
they are different joints). SPIN's 24 keypoints are mmhuman3d's ``smpl_24`` (the last 24 of ``smpl_49``),
in the order of :data:`pipeline.body.constants.SPIN24_NAMES`.
"""

from __future__ import annotations

import numpy as np

from pipeline.body.constants import SPIN24_NAMES

# SPIN-24 in mmhuman3d's names (``smpl_24``), index i = SPIN24_NAMES[i].
SMPL_24: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip_extra", "left_hip_extra", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck_extra", "headtop", "pelvis_extra", "thorax_extra", "spine_extra", "jaw_extra", "head_extra",
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
)  # fmt: skip

# The 24 SMPL skeleton joints (mmhuman3d ``smpl``).
SMPL_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine_1", "left_knee", "right_knee", "spine_2", "left_ankle",
    "right_ankle", "spine_3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)  # fmt: skip

# What SMPL's own J_regressor adds to its 24 joints (face, feet, finger tips): ``smpl_45``.
_SMPL_45_EXTRA: tuple[str, ...] = (
    "nose", "right_eye", "left_eye", "right_ear", "left_ear", "left_bigtoe", "left_smalltoe", "left_heel",
    "right_bigtoe", "right_smalltoe", "right_heel", "left_thumb", "left_index", "left_middle", "left_ring",
    "left_pinky", "right_thumb", "right_index", "right_middle", "right_ring", "right_pinky",
)  # fmt: skip

# The 9 rows of SPIN's J_regressor_extra.npy: ``smpl_54`` = ``smpl_45`` + these.
J_REGRESSOR_EXTRA_9: tuple[str, ...] = (
    "right_hip_extra", "left_hip_extra", "neck_extra", "headtop", "pelvis_extra", "thorax_extra",
    "spine_extra", "jaw_extra", "head_extra",
)  # fmt: skip

# OpenPose BODY_25, suffixed ``_openpose`` (the first 25 of ``smpl_49``).
OPENPOSE_25: tuple[str, ...] = tuple(
    f"{n}_openpose"
    for n in (
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
        "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_bigtoe", "left_smalltoe",
        "left_heel", "right_bigtoe", "right_smalltoe", "right_heel",
    )
)  # fmt: skip

# mmhuman3d's own 190-joint ``human_data`` convention (what its converters store by default).
HUMAN_DATA: tuple[str, ...] = (
    *SMPL_JOINTS[:22], "jaw", "left_eyeball", "right_eyeball",
    *(f"{side}_{finger}_{k}" for side in ("left", "right")
      for finger in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3)),
    *_SMPL_45_EXTRA,
    "right_eyebrow_1", "right_eyebrow_2", "right_eyebrow_3", "right_eyebrow_4", "right_eyebrow_5",
    "left_eyebrow_5", "left_eyebrow_4", "left_eyebrow_3", "left_eyebrow_2", "left_eyebrow_1",
    "nosebridge_1", "nosebridge_2", "nosebridge_3", "nosebridge_4",
    "right_nose_2", "right_nose_1", "nose_middle", "left_nose_1", "left_nose_2",
    "right_eye_1", "right_eye_2", "right_eye_3", "right_eye_4", "right_eye_5", "right_eye_6",
    "left_eye_4", "left_eye_3", "left_eye_2", "left_eye_1", "left_eye_6", "left_eye_5",
    "right_mouth_1", "right_mouth_2", "right_mouth_3", "mouth_top", "left_mouth_3", "left_mouth_2",
    "left_mouth_1", "left_mouth_5", "left_mouth_4", "mouth_bottom", "right_mouth_4", "right_mouth_5",
    "right_lip_1", "right_lip_2", "lip_top", "left_lip_2", "left_lip_1", "left_lip_3", "lip_bottom",
    "right_lip_3",
    *(f"right_contour_{k}" for k in range(1, 9)), "contour_middle",
    *(f"left_contour_{k}" for k in range(8, 0, -1)),
    *J_REGRESSOR_EXTRA_9,
    *OPENPOSE_25,
    "spine_4_3dhp", "left_clavicle_3dhp", "right_clavicle_3dhp", "left_hand_3dhp", "right_hand_3dhp",
    "left_toe_3dhp", "right_toe_3dhp", "head_h36m", "headtop_h36m", "head_bottom_pt",
    "left_hand", "right_hand",
)  # fmt: skip

COCO_17: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip_extra", "right_hip_extra",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

H36M_17: tuple[str, ...] = (
    "pelvis_extra", "left_hip_extra", "left_knee", "left_ankle", "right_hip_extra", "right_knee",
    "right_ankle", "spine_extra", "neck_extra", "head_extra", "headtop", "left_shoulder", "left_elbow",
    "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)  # fmt: skip

# mmhuman3d's ``h36m_mmpose``: the same joints with the legs listed right side first.
H36M_17_MMPOSE: tuple[str, ...] = (*H36M_17[:1], *H36M_17[4:7], *H36M_17[1:4], *H36M_17[7:])

LSP_14: tuple[str, ...] = SMPL_24[:14]

MPII_16: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip_extra", "left_hip_extra", "left_knee", "left_ankle",
    "pelvis_extra", "thorax_extra", "neck_extra", "headtop", "right_wrist", "right_elbow",
    "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)  # fmt: skip

# 3DPW's poses2d (OpenPose COCO-18), mmhuman3d ``pw3d``.
PW3D_18: tuple[str, ...] = (
    "nose", "neck_extra", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip_extra", "right_knee", "right_ankle", "left_hip_extra", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip

CONVENTIONS: dict[str, tuple[str, ...]] = {
    "human_data": HUMAN_DATA,
    "smpl": SMPL_JOINTS,
    "smpl_24": SMPL_24,
    "smpl_45": SMPL_JOINTS + _SMPL_45_EXTRA,
    "smpl_49": OPENPOSE_25 + SMPL_24,
    "smpl_54": SMPL_JOINTS + _SMPL_45_EXTRA + J_REGRESSOR_EXTRA_9,
    "coco": COCO_17,
    "h36m": H36M_17,
    "h36m_mmpose": H36M_17_MMPOSE,
    "lsp": LSP_14,
    "mpii": MPII_16,
    "pw3d": PW3D_18,
    "openpose_25": OPENPOSE_25,
}


def spin24_sources(convention: str) -> np.ndarray:
    """(24,) int64: for each SPIN-24 joint, its index in ``convention``, or -1 when the convention lacks it.

    Raises KeyError naming the known conventions for an unknown one.
    """
    names = CONVENTIONS.get(convention)
    if names is None:
        raise KeyError(f"unknown keypoint convention {convention!r} (known: {sorted(CONVENTIONS)})")
    index = {name: i for i, name in enumerate(names)}
    return np.array([index.get(name, -1) for name in SMPL_24], np.int64)


def _check() -> None:
    assert len(SMPL_24) == len(SPIN24_NAMES) == 24 and len(HUMAN_DATA) == 190
    for name, names in CONVENTIONS.items():
        assert len(set(names)) == len(names), f"convention {name} repeats a joint name"
    sizes = {"smpl_45": 45, "smpl_49": 49, "smpl_54": 54, "coco": 17, "h36m": 17, "mpii": 16, "pw3d": 18}
    assert all(len(CONVENTIONS[k]) == n for k, n in sizes.items())


_check()
