"""The SMPL-format body model as a batched torch module.

Skinning uses smplx's `lbs` building blocks (`blend_shapes`, `vertices2joints`, `batch_rodrigues`,
`batch_rigid_transform`), the same code path as `smplx.lbs.lbs`; the one difference is that pose-corrective
blend shapes are skipped when the model has none (the open model), instead of multiplying by a 33 MB zero
matrix. `smplx.SMPL` itself is not used because it appends 21 extra vertex joints and insists on its own file
layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues, blend_shapes, vertices2joints

from pipeline.body.constants import NUM_BETAS, NUM_JOINTS
from pipeline.body.keypoints import check_h36m17, read_regressor, spin24_regressor
from pipeline.body.smpl_io import BodyModelFileError, SMPLArrays, read_smpl_file, resolve_model_path
from pipeline.body.symmetry import vertex_mirror_map


@dataclass(frozen=True)
class BodyOutput:
    """vertices: (B, V, 3) metres; joints: (B, 24, 3) metres; rotmats: (B, 24, 3, 3) local joint rotations."""

    vertices: torch.Tensor
    joints: torch.Tensor
    rotmats: torch.Tensor


def pose_to_rotmats(pose: torch.Tensor) -> torch.Tensor:
    """(B, 72) axis-angle or (B, 24, 3, 3) rotation matrices -> (B, 24, 3, 3) rotation matrices."""
    if pose.ndim == 2 and pose.shape[1] == NUM_JOINTS * 3:
        return batch_rodrigues(pose.reshape(-1, 3)).reshape(pose.shape[0], NUM_JOINTS, 3, 3)
    if pose.ndim == 4 and pose.shape[1:] == (NUM_JOINTS, 3, 3):
        return pose
    raise ValueError(f"pose must be (B, 72) axis-angle or (B, 24, 3, 3) rotations, got {tuple(pose.shape)}")


def skin_vertices(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning.

    vertices: (B, V, 3) shaped rest vertices; weights: (V, J); transforms: (B, J, 4, 4) joint transforms
    relative to the rest pose (as returned by smplx's batch_rigid_transform). Returns (B, V, 3).
    """
    batch = transforms.shape[0]
    # one (V, J) @ (J, 16) matmul per batch: 2x faster on CPU than the equivalent einsum
    per_vertex = torch.matmul(weights, transforms.reshape(batch, -1, 16)).reshape(batch, -1, 4, 4)
    return torch.matmul(per_vertex[..., :3, :3], vertices[..., None])[..., 0] + per_vertex[..., :3, 3]


class BodyModel(torch.nn.Module):
    """An SMPL-format body model: betas (B, 10) and pose -> vertices (B, V, 3) and joints (B, 24, 3).

    Buffers follow the model's device and dtype (float32 by default). Extra keypoint regressors
    (`spin24`, `h36m17`, ...) are applied with :meth:`regress`.
    """

    faces: torch.Tensor
    parents: torch.Tensor

    def __init__(self, arrays: SMPLArrays, name: str = "", dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.name = name or arrays.source
        num_betas = min(NUM_BETAS, arrays.shapedirs.shape[2])
        shapedirs = np.zeros((arrays.num_vertices, 3, NUM_BETAS))
        shapedirs[..., :num_betas] = arrays.shapedirs[..., :num_betas]

        def buffer(name: str, array: np.ndarray, cast: torch.dtype = dtype) -> None:
            self.register_buffer(
                name, torch.as_tensor(np.ascontiguousarray(array)).to(cast), persistent=False
            )

        buffer("v_template", arrays.v_template)
        buffer("shapedirs", shapedirs)
        buffer("J_regressor", arrays.J_regressor)
        buffer("lbs_weights", arrays.weights)
        buffer("faces", arrays.f, torch.int64)
        buffer("parents", arrays.parents, torch.int64)
        if arrays.posedirs is not None and np.any(arrays.posedirs):
            # smplx's layout: (207, V*3), pose feature (B, 207) @ posedirs -> per-vertex offsets.
            posedirs = arrays.posedirs.reshape(-1, arrays.posedirs.shape[-1]).T
            buffer("posedirs", posedirs)
        else:
            self.register_buffer("posedirs", None, persistent=False)
        self._mirror = arrays.extras.get("vertex_mirror")  # computed on first use when the file has none
        self._regressors: list[str] = []
        for key, value in sorted(arrays.extras.items()):
            if key.startswith("regressor_"):
                self.add_regressor(key.removeprefix("regressor_"), value, f"{arrays.source}: '{key}'")

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def vertex_mirror(self) -> torch.Tensor:
        """(V,) int64 index of each vertex's left/right mirror image (x -> -x); ValueError if asymmetric."""
        if self._mirror is None:
            self._mirror = vertex_mirror_map(self.v_template.detach().cpu().double().numpy())
        return torch.as_tensor(self._mirror, dtype=torch.int64, device=self.v_template.device)

    @property
    def num_betas(self) -> int:
        return NUM_BETAS

    @property
    def regressor_names(self) -> list[str]:
        """Names accepted by :meth:`regress`: 'smpl24' plus any extra regressors loaded."""
        return ["smpl24", *self._regressors]

    def add_regressor(self, name: str, matrix: np.ndarray | torch.Tensor, source: str = "") -> None:
        """Registers a (K, V) keypoint regressor under `name` (e.g. 'h36m17' from J_regressor_h36m.npy).

        'h36m17' is checked for the field's row order (keypoints.check_h36m17); `source` names the file in
        errors."""
        matrix = np.asarray(torch.as_tensor(matrix).detach().cpu().double())
        source = source or f"regressor '{name}' of {self.name}"
        if matrix.ndim != 2 or matrix.shape[1] != self.num_vertices:
            raise BodyModelFileError(
                f"{source}: regressor '{name}' has shape {tuple(matrix.shape)}, expected (K, "
                f"{self.num_vertices}) for body model {self.name}"
            )
        if name == "h36m17":
            check_h36m17(matrix, self.rest_vertices(), source)
        self.register_buffer(
            f"regressor_{name}", torch.as_tensor(matrix).to(self.v_template), persistent=False
        )
        if name not in self._regressors:
            self._regressors.append(name)

    def add_extra_regressor(self, matrix: np.ndarray, source: str) -> None:
        """Builds and registers 'spin24' from a J_regressor_extra file's (9 | 14, V) rows (SPIN's recipe)."""
        joints = self.J_regressor.detach().cpu().double().numpy()
        self.add_regressor("spin24", spin24_regressor(joints, matrix, self.rest_vertices(), source), source)

    def rest_vertices(self) -> np.ndarray:
        """(V, 3) float64 vertices of the mean shape in the rest pose (metres, SMPL axes)."""
        return self.v_template.detach().cpu().double().numpy()

    def regress(self, vertices: torch.Tensor, name: str) -> torch.Tensor:
        """(B, V, 3) vertices -> (B, K, 3) keypoints of the named regressor."""
        if name == "smpl24":
            return vertices2joints(self.J_regressor, vertices)
        if name not in self._regressors:
            hint = {
                "spin24": "pass SPIN's J_regressor_extra.npy (--extra-regressor / DANET_EXTRA_REGRESSOR)",
                "h36m17": "pass J_regressor_h36m.npy (stages.evaluate --h36m-regressor)",
            }.get(name, "")
            raise KeyError(
                f"no regressor '{name}' on body model {self.name}; have {self.regressor_names}"
                + (f": {hint}" if hint else "")
            )
        return vertices2joints(getattr(self, f"regressor_{name}"), vertices)

    def forward(
        self,
        betas: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Poses the body.

        betas: (B, 10) shape coefficients (None = mean shape); pose: (B, 72) axis-angle in radians or
        (B, 24, 3, 3) local rotation matrices, joint 0 being the global orientation (None = rest pose);
        transl: (B, 3) metres added to every vertex and joint. Returns a :class:`BodyOutput`.
        """
        batch = next((t.shape[0] for t in (betas, pose, transl) if t is not None), 1)
        device, dtype = self.v_template.device, self.v_template.dtype
        if betas is None:
            betas = torch.zeros(batch, NUM_BETAS, device=device, dtype=dtype)
        if betas.ndim != 2 or betas.shape[1] > NUM_BETAS:
            raise ValueError(f"betas must be (B, <= {NUM_BETAS}), got {tuple(betas.shape)}")
        if betas.shape[1] < NUM_BETAS:
            betas = torch.nn.functional.pad(betas, (0, NUM_BETAS - betas.shape[1]))
        if pose is None:
            rotmats = torch.eye(3, device=device, dtype=dtype).expand(batch, NUM_JOINTS, 3, 3)
        else:
            rotmats = pose_to_rotmats(pose.to(dtype))
        if betas.shape[0] != batch or rotmats.shape[0] != batch:
            raise ValueError(f"batch sizes differ: betas {betas.shape[0]}, pose {rotmats.shape[0]}")
        betas = betas.to(dtype)

        shaped = self.v_template + blend_shapes(betas, self.shapedirs)  # (B, V, 3)
        rest_joints = vertices2joints(self.J_regressor, shaped)  # (B, 24, 3)
        if self.posedirs is not None:
            identity = torch.eye(3, device=device, dtype=dtype)
            pose_feature = (rotmats[:, 1:] - identity).reshape(batch, -1)
            shaped = shaped + (pose_feature @ self.posedirs).reshape(batch, -1, 3)
        joints, transforms = batch_rigid_transform(rotmats, rest_joints, self.parents, dtype=dtype)
        vertices = skin_vertices(shaped, self.lbs_weights, transforms)
        if transl is not None:
            vertices = vertices + transl[:, None, :].to(dtype)
            joints = joints + transl[:, None, :].to(dtype)
        return BodyOutput(vertices=vertices, joints=joints, rotmats=rotmats)


def load_body_model(
    name_or_path: str | Path = "anny-smpl24",
    *,
    gender: str = "neutral",
    h36m_regressor: str | Path | None = None,
    extra_regressor: str | Path | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> BodyModel:
    """Loads the built-in open model ('anny-smpl24'), an SMPL .pkl/.npz file, or an SMPL folder + gender.

    h36m_regressor: optional J_regressor_h36m.npy ((17, V)), registered as 'h36m17' (row order checked).
    extra_regressor: optional J_regressor_extra.npy (SPIN's (9, V) or GraphCMR's (14, V)); builds 'spin24'.
    A regressor the file itself carries is replaced by the one given.
    """
    path = resolve_model_path(name_or_path, gender)
    model = BodyModel(read_smpl_file(path), name=str(name_or_path), dtype=dtype)
    if h36m_regressor:
        model.add_regressor("h36m17", read_regressor(h36m_regressor, "H36M regressor"), str(h36m_regressor))
    if extra_regressor:
        model.add_extra_regressor(read_regressor(extra_regressor, "extra regressor"), str(extra_regressor))
    return model.to(device) if device is not None else model
