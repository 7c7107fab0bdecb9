"""Body models: SMPL-format arrays, the batched model, dense parts and left/right symmetry."""

from pipeline.body.model import BodyModel, BodyOutput, load_body_model, pose_to_rotmats
from pipeline.body.parts import DenseParts, load_dense_parts, read_uv_processed
from pipeline.body.smpl_io import BodyModelFileError, SMPLArrays, read_smpl_file

__all__ = [
    "BodyModel", "BodyModelFileError", "BodyOutput", "DenseParts", "SMPLArrays", "load_body_model",
    "load_dense_parts", "pose_to_rotmats", "read_smpl_file", "read_uv_processed",
]  # fmt: skip
