"""Batched cameras that take body vertices (metres) to the rasterizer's screen space.

Camera frame: OpenCV convention, x right, y down, z forward (depth, metres). Screen space: (x_pixel, y_pixel,
z_depth) with pixel centres at integer + 0.5 (see rasterize.py). Both cameras expose
``to_camera(vertices) -> (B,V,3)`` and ``to_screen(vertices, height, width) -> (B,V,3)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.conventions import REFERENCE_CROP, crop_focal, screen_centre, weak_perspective_translation


def project_pinhole(points: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor) -> torch.Tensor:
    """Pinhole projection of camera-frame points, keeping depth.

    Args:
        points: (B,V,3) camera-frame points in metres (z = depth).
        focal: (B,2) focal lengths (fx, fy) in pixels.
        principal: (B,2) principal point (cx, cy) in pixels (pixel centres at integer + 0.5).

    Returns:
        (B,V,3) screen-space (x_pixel, y_pixel, z_metres). Points with z <= 0 get meaningless x, y (the
        rasterizer culls their triangles by z).
    """
    z = points[..., 2:3]
    safe_z = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    xy = points[..., :2] / safe_z * focal[:, None, :] + principal[:, None, :]
    return torch.cat([xy, z], dim=-1)


@dataclass
class WeakPerspectiveCamera:
    """The paper's crop camera from weak-perspective parameters, generalised to any crop size.

    cam: (B,3) (s, tx, ty): s is the scale of the body in normalised crop units ([-1, 1] across the crop),
        tx, ty translate the body in metres (camera frame).
    crop_size: side of the square crop in pixels that (s, tx, ty) refer to. The focal length is
        5000 * crop_size / 224 pixels, the principal point the crop centre, and the camera translation
        t = [tx, ty, 2 f / (crop_size * s)] metres (so depth does not depend on crop_size).
    """

    cam: torch.Tensor
    crop_size: float = REFERENCE_CROP

    def __post_init__(self) -> None:
        if self.cam.ndim != 2 or self.cam.shape[-1] != 3:
            raise ValueError(
                f"WeakPerspectiveCamera: cam must be (B,3) = (s, tx, ty), got {tuple(self.cam.shape)}"
            )

    @property
    def focal(self) -> float:
        """Focal length in crop pixels."""
        return crop_focal(self.crop_size)

    def translation(self) -> torch.Tensor:
        """(B,3) camera translation in metres: [tx, ty, 2 f / (crop_size * s)]."""
        return weak_perspective_translation(self.cam, self.focal, self.crop_size)

    def to_camera(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B,V,3) body vertices (metres, already in the camera's axes) -> camera frame (metres)."""
        return vertices + self.translation().to(vertices)[:, None, :]

    def to_screen(self, vertices: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B,V,3) body vertices -> (B,V,3) screen space of an H x W image covering the whole crop."""
        points = self.to_camera(vertices)
        batch = points.shape[0]
        scale = points.new_tensor([width / self.crop_size, height / self.crop_size])
        focal = (points.new_full((batch, 2), self.focal)) * scale
        principal = points.new_full((batch, 2), screen_centre(self.crop_size)) * scale
        return project_pinhole(points, focal, principal)


@dataclass
class PerspectiveCamera:
    """Full perspective camera: x_cam = R x + t, pixel = K x_cam / z.

    K: (B,3,3) intrinsics in pixels of an image of size ``image_size`` (height, width); when image_size is
        None, K refers to the size passed to ``to_screen``. Skew is ignored (K[0,1] must be 0).
    R: (B,3,3) rotation world -> camera; t: (B,3) translation in metres.
    """

    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        b = self.K.shape[0]
        for name, value, shape in (("K", self.K, (b, 3, 3)), ("R", self.R, (b, 3, 3)), ("t", self.t, (b, 3))):
            if tuple(value.shape) != shape:
                raise ValueError(f"PerspectiveCamera: {name} must be {shape}, got {tuple(value.shape)}")

    def to_camera(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B,V,3) world vertices (metres) -> camera frame (metres)."""
        R, t = self.R.to(vertices), self.t.to(vertices)
        return torch.einsum("bij,bvj->bvi", R, vertices) + t[:, None, :]

    def to_screen(self, vertices: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B,V,3) world vertices -> (B,V,3) screen space of an H x W image."""
        points = self.to_camera(vertices)
        K = self.K.to(points)
        focal = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=-1)
        principal = torch.stack([K[:, 0, 2], K[:, 1, 2]], dim=-1)
        if self.image_size is not None:
            scale = points.new_tensor([width / self.image_size[1], height / self.image_size[0]])
            focal, principal = focal * scale, principal * scale
        return project_pinhole(points, focal, principal)
