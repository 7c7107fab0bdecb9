"""Fixed tables of the SMPL 24-joint skeleton, DensePose's 24 body parts and DaNet's per-joint settings.

Everything here is plain data (tuples of ints/floats) so that every layer of the project, numpy or torch,
reads the same numbers. Sources: SMPL's kinematic tree, DensePose-COCO's part numbering, SPIN's keypoint
order, and the DaNet reference implementation (see docs/design.md).
"""

from __future__ import annotations

NUM_JOINTS = 24
NUM_BETAS = 10
NUM_PARTS = 24  # DensePose fine parts, numbered 1..24; 0 is background.
NUM_COARSE_PARTS = 14  # DensePose coarse segmentation, 1..14; 0 is background (15 classes with it).

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)  # fmt: skip

# parent of each SMPL joint; -1 for the root.
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip

# index of the mirrored joint (left <-> right) for each SMPL joint.
SMPL_JOINT_FLIP: tuple[int, ...] = (
    0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22,
)  # fmt: skip

# SPIN's 24 keypoints (the `part` / kp2d / kp3d order of every manifest).
SPIN24_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck_lsp",
    "head_top_lsp", "pelvis_mpii", "thorax_mpii", "spine_h36m", "jaw_h36m", "head_h36m", "nose",
    "left_eye", "right_eye", "left_ear", "right_ear",
)  # fmt: skip
SPIN24_FLIP: tuple[int, ...] = (
    5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22,
)  # fmt: skip

# Human3.6M's 17 joints, in the row order of the field's J_regressor_h36m.npy (SPIN, DaNet, PyMAF): rows 1-3
# lie on the LEFT leg and 4-6 on the right (hip, knee, ankle), 11-13 on the left arm, 14-16 on the right.
H36M17_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle", "spine",
    "thorax", "neck_nose", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
    "right_elbow", "right_wrist",
)  # fmt: skip
H36M17_PELVIS = 0
H36M17_LEFT_LEG: tuple[int, ...] = (1, 2, 3)
H36M17_RIGHT_LEG: tuple[int, ...] = (4, 5, 6)
# H36M-17 -> the 17 joints of the evaluation protocols (SPIN's H36M_TO_J17): the 14 LSP joints, then the
# pelvis, spine and head (the MPI-INF-3DHP protocol uses all 17, Human3.6M the first 14).
H36M17_TO_J17: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M17_TO_J14: tuple[int, ...] = H36M17_TO_J17[:14]
# SPIN-24 (the manifests' kp3d `S`) -> the same 17 (SPIN's J24_TO_J17): LSP limbs 0..11, neck 12, head 18
# (H36M's head; 13 is LSP's head top), pelvis 14, spine 16, jaw 17.
SPIN24_TO_J17: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17)
SPIN24_TO_J14: tuple[int, ...] = SPIN24_TO_J17[:14]
SPIN24_PELVIS = 14  # "pelvis_mpii": Human3.6M's pelvis in SPIN's h36m S arrays (their root)
SPIN24_HIPS: tuple[int, ...] = (2, 3)  # right, left: their midpoint stands in for a hidden pelvis

DENSEPOSE_PART_NAMES: tuple[str, ...] = (
    "background",
    "torso_back", "torso_front", "right_hand", "left_hand", "left_foot", "right_foot",
    "upper_leg_right_back", "upper_leg_left_back", "upper_leg_right_front", "upper_leg_left_front",
    "lower_leg_right_back", "lower_leg_left_back", "lower_leg_right_front", "lower_leg_left_front",
    "upper_arm_left_back", "upper_arm_right_back", "upper_arm_left_front", "upper_arm_right_front",
    "lower_arm_left_back", "lower_arm_right_back", "lower_arm_left_front", "lower_arm_right_front",
    "head_right", "head_left",
)  # fmt: skip

# index of the mirrored part (left <-> right) for each part 0..24; torso parts map to themselves.
PART_FLIP: tuple[int, ...] = (
    0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23,
)  # fmt: skip

# Fine part (0..24) -> coarse part (0..14): torso, right hand, left hand, left foot, right foot,
# upper leg right, upper leg left, lower leg right, lower leg left, upper arm left, upper arm right,
# lower arm left, lower arm right, head.
PART_TO_COARSE: tuple[int, ...] = (
    0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14,
)  # fmt: skip

# Fine part (0..24) -> body segment (0..8), side and front/back merged: torso, hand, foot, upper leg,
# lower leg, upper arm, lower arm, head. Scores how well an IUV estimator finds body segments apart from
# telling left from right and front from back (the hard part of a single view).
SEGMENT_NAMES: tuple[str, ...] = (
    "background", "torso", "hand", "foot", "upper_leg", "lower_leg", "upper_arm", "lower_arm", "head",
)  # fmt: skip
PART_TO_SEGMENT: tuple[int, ...] = (
    0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8,
)  # fmt: skip

# DaNet's simplified partial IUV: the 6 parts kept around each SMPL joint (7 channels with background).
_TORSO_LEGS_UP = (7, 8, 9, 10, 1, 2)
_LEFT_HIP = (1, 2, 8, 10, 12, 14)
_RIGHT_HIP = (1, 2, 7, 9, 11, 13)
_LEFT_ANKLE = (8, 10, 12, 14, 5, 5)
_RIGHT_ANKLE = (7, 9, 11, 13, 6, 6)
_NECK = (1, 2, 23, 24, 23, 24)
_LEFT_ARM = (1, 2, 15, 17, 19, 21)
_RIGHT_ARM = (1, 2, 16, 18, 20, 22)
_LEFT_WRIST = (15, 17, 19, 21, 4, 4)
_RIGHT_WRIST = (16, 18, 20, 22, 3, 3)
PARTIAL_PART_SUBSETS: tuple[tuple[int, ...], ...] = (
    _TORSO_LEGS_UP, _LEFT_HIP, _RIGHT_HIP, _TORSO_LEGS_UP, _LEFT_HIP, _RIGHT_HIP, _TORSO_LEGS_UP,
    _LEFT_ANKLE, _RIGHT_ANKLE, _TORSO_LEGS_UP, _LEFT_ANKLE, _RIGHT_ANKLE, _NECK, _LEFT_ARM, _RIGHT_ARM,
    _NECK, _LEFT_ARM, _RIGHT_ARM, _LEFT_ARM, _RIGHT_ARM, _LEFT_WRIST, _RIGHT_WRIST, _LEFT_WRIST,
    _RIGHT_WRIST,
)  # fmt: skip

# Learned joint-centric RoI constants of the reference model (SMPL joint order):
# RoI side = s_k * alpha_k + delta_k, s_k = longer of the bones to parent and child.
ROI_ALPHA: tuple[float, ...] = (
    0.68, 1.21, 1.18, 1.39, 1.10, 1.09, 1.60, 1.02, 1.05, 0.87, 0.36, 0.44, 1.02, 1.25, 1.26, 0.58,
    1.17, 1.20, 1.20, 1.20, 0.85, 0.86, 0.46, 0.40,
)  # fmt: skip
ROI_DELTA: tuple[float, ...] = (
    0.091, 0.023, 0.023, 0.201, 0.014, 0.017, 0.110, 0.061, 0.061, 0.166, 0.737, 0.755, 0.078, 0.153,
    0.150, 0.252, 0.064, 0.064, 0.047, 0.047, 0.060, 0.055, 0.217, 0.214,
)  # fmt: skip


def _check_tables() -> None:
    """Cheap self-consistency of the tables above (runs at import; a typo here would poison everything)."""
    assert len(SMPL_PARENTS) == len(SMPL_JOINT_NAMES) == len(SMPL_JOINT_FLIP) == NUM_JOINTS
    assert len(SPIN24_NAMES) == len(SPIN24_FLIP) == 24
    assert len(DENSEPOSE_PART_NAMES) == len(PART_FLIP) == len(PART_TO_COARSE) == NUM_PARTS + 1
    assert len(PARTIAL_PART_SUBSETS) == len(ROI_ALPHA) == len(ROI_DELTA) == NUM_JOINTS
    for table in (SMPL_JOINT_FLIP, SPIN24_FLIP, PART_FLIP):
        assert all(table[table[i]] == i for i in range(len(table))), "flip tables must be involutions"
    assert len(H36M17_NAMES) == 17 and len(SPIN24_TO_J17) == len(H36M17_TO_J17) == 17
    for h36m, spin in zip(H36M17_TO_J17[:12], SPIN24_TO_J17[:12], strict=True):  # same limb, same side
        assert H36M17_NAMES[h36m].split("_")[0] == SPIN24_NAMES[spin].split("_")[0], (h36m, spin)
    assert all(H36M17_NAMES[i].startswith("left") for i in H36M17_LEFT_LEG)
    assert SPIN24_NAMES[SPIN24_PELVIS].startswith("pelvis")
    assert len(PART_TO_SEGMENT) == NUM_PARTS + 1 and max(PART_TO_SEGMENT) == len(SEGMENT_NAMES) - 1
    assert all(PART_TO_SEGMENT[PART_FLIP[i]] == PART_TO_SEGMENT[i] for i in range(NUM_PARTS + 1))
    for part, segment in enumerate(PART_TO_SEGMENT[1:], start=1):  # "upper_leg_right_back" -> "upper_leg"
        assert SEGMENT_NAMES[segment] in DENSEPOSE_PART_NAMES[part], (part, segment)


_check_tables()
